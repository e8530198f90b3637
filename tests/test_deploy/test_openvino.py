"""The ``openvino`` deploy backend: the IR keeps int8 weights int8, states
which layers run in int8, is checked against PyTorch like every graph (a
broken IR fails the tool), and the package works without openvino."""
import builtins
import math
import os.path as osp

import numpy as np
import onnx
import pytest
from mmengine.config import Config
from onnx import TensorProto, helper, numpy_helper

from gpusq_mm.deploy.codebases.base import cosine
from gpusq_mm.deploy.codebases.mmpretrain import MMPretrainExporter
from gpusq_mm.deploy.pipeline import DeployPipeline, ParityError
from tests.utils import REPO

from .conftest import demo_config

CLS_OV = osp.join(REPO, 'configs', 'deploy', 'classification',
                  'classification_openvino_int8.py')
NEEDS_OV = 'the openvino backend tests need openvino (make setup installs it)'


def _pipeline(ckpt: str, img: str, work_dir, cls=DeployPipeline):
    return cls(Config.fromfile(CLS_OV),
               Config.fromfile(demo_config('deit_tiny_gpusq.py')), ckpt,
               img, str(work_dir))


def _int8_bytes(path: str) -> int:
    return sum(numpy_helper.to_array(i).nbytes
               for i in onnx.load(path).graph.initializer
               if i.data_type == TensorProto.INT8)


def test_deit_openvino_deploy(deit_gpusq_ckpt, cls_img, tmp_path):
    pytest.importorskip('openvino', reason=NEEDS_OV)
    report = _pipeline(deit_gpusq_ckpt, cls_img, tmp_path).run()
    ov = report['openvino']
    assert ov['xml'] == str(tmp_path / 'end2end.xml')
    assert osp.isfile(ov['bin']) and osp.getsize(ov['bin']) == ov['bin_bytes']
    # the int8 initializers are the IR's int8 constants, byte for byte;
    # the .bin is far below a float re-expansion of them
    int8 = _int8_bytes(report['onnx'])
    assert int8 > 0 and ov['int8_weight_bytes'] == int8
    assert ov['bin_bytes'] < 2 * int8 and not ov['compress_to_fp16']
    assert 'f16' not in ov['weight_bytes']
    # OpenVINO runs every int8 GEMM of the graph in int8
    run = ov['execution']
    assert run['int8_gemm_layers'] == report['graph_gemms']['int8'] == 17
    fc = run['by_type']['FullyConnected']
    assert set(fc) <= {'i8', 'u8'} and sum(fc.values()) == 17
    assert ov['unsigned_activations'] == 0  # the export as verified
    graphs = report['parity']['graphs']
    assert set(graphs) == {'end2end.onnx', 'end2end.xml'}
    assert graphs['end2end.xml']['passed']
    assert graphs['end2end.xml']['passed_images'] == \
        graphs['end2end.xml']['num_images'] >= 2
    md = (tmp_path / 'report.md').read_text()
    assert 'OpenVINO runs 17 of' in md and 'end2end.xml' in md


def _zero_int8_weights(src: str, dst: str) -> None:
    model = onnx.load(src)
    for init in model.graph.initializer:
        if init.data_type == TensorProto.INT8:
            array = numpy_helper.to_array(init)
            init.CopyFrom(numpy_helper.from_array(np.zeros_like(array),
                                                  init.name))
    onnx.save(model, dst)


class _BrokenIR(DeployPipeline):
    """Converts a copy of the verified ONNX with every int8 weight zeroed
    (a broken conversion): the IR alone is wrong."""

    def convert_openvino(self) -> None:
        good = self.onnx_path
        self.onnx_path = osp.join(self.work_dir, 'broken.onnx')
        _zero_int8_weights(good, self.onnx_path)
        try:
            super().convert_openvino()
        finally:
            self.onnx_path = good


def test_broken_ir_fails_parity(deit_gpusq_ckpt, cls_img, tmp_path):
    pytest.importorskip('openvino', reason=NEEDS_OV)
    pipe = _pipeline(deit_gpusq_ckpt, cls_img, tmp_path, cls=_BrokenIR)
    with pytest.raises(ParityError, match=r"'broken\.xml'"):
        pipe.run()
    graphs = pipe.report['parity']['graphs']
    assert graphs['end2end.onnx']['passed']
    broken = graphs['broken.xml']
    assert not broken['passed'] and broken['passed_images'] == 0
    assert all(v['logits_cosine'] < 0.999 for v in broken['images'])


def _matmul_onnx(path: str, int8: bool) -> np.ndarray:
    """``x @ W`` with ``W`` (64, 32) stored int8 behind a DequantizeLinear,
    or as the equal float32 initializer."""
    rng = np.random.default_rng(0)
    q = rng.integers(-127, 128, (64, 32)).astype(np.int8)
    scale = np.full(32, 0.01, np.float32)
    if int8:
        inits = [numpy_helper.from_array(q, 'w_q'),
                 numpy_helper.from_array(scale, 'w_s'),
                 numpy_helper.from_array(np.zeros(32, np.int8), 'w_z')]
        nodes = [helper.make_node('DequantizeLinear', ['w_q', 'w_s', 'w_z'],
                                  ['w'], axis=1)]
    else:
        inits = [numpy_helper.from_array(q.astype(np.float32) * scale, 'w')]
        nodes = []
    nodes.append(helper.make_node('MatMul', ['x', 'w'], ['y']))
    graph = helper.make_graph(
        nodes, 'g', [helper.make_tensor_value_info('x', TensorProto.FLOAT,
                                                   [4, 64])],
        [helper.make_tensor_value_info('y', TensorProto.FLOAT, [4, 32])],
        inits)
    onnx.save(helper.make_model(graph, opset_imports=[
        helper.make_opsetid('', 17)]), path)
    return q


def test_ir_weight_bytes_tell_int8_from_float(tmp_path):
    pytest.importorskip('openvino', reason=NEEDS_OV)
    from gpusq_mm.deploy.openvino import convert_to_ir, run_ir
    x = np.random.default_rng(1).standard_normal((4, 64)).astype(np.float32)
    facts, outs = {}, {}
    for int8 in (True, False):
        name = 'int8' if int8 else 'float'
        _matmul_onnx(str(tmp_path / f'{name}.onnx'), int8)
        facts[name] = convert_to_ir(str(tmp_path / f'{name}.onnx'),
                                    str(tmp_path / f'{name}.xml'))
        outs[name] = run_ir(facts[name]['xml'], x)[0]
    assert facts['int8']['int8_weight_bytes'] == 64 * 32
    assert facts['int8']['bin_bytes'] < 64 * 32 * 2
    # a float re-expansion shows: no int8 bytes, a 4x larger .bin
    assert facts['float']['int8_weight_bytes'] == 0
    assert facts['float']['bin_bytes'] >= 64 * 32 * 4
    np.testing.assert_allclose(outs['int8'], outs['float'], rtol=1e-5,
                               atol=1e-5)
    # OpenVINO's own default would store the float weights as FP16
    half = convert_to_ir(str(tmp_path / 'float.onnx'),
                         str(tmp_path / 'half.xml'), compress_to_fp16=True)
    assert half['weight_bytes'].get('f16') == 64 * 32 * 2


def test_cosine_of_zeros_is_nan_and_fails():
    good = np.linspace(-1, 1, 10, dtype=np.float32)[None]
    zeros = np.zeros_like(good)
    assert math.isnan(cosine(zeros, zeros))
    assert math.isnan(cosine(good, zeros))
    assert cosine(good, good) == pytest.approx(1.0)
    exporter = MMPretrainExporter.__new__(MMPretrainExporter)
    assert exporter.compare([good], [good * 1.0001])['passed']
    verdict = exporter.compare([zeros], [zeros])
    assert not verdict['passed'] and verdict['all_zero']
    assert not exporter.compare([good], [zeros])['passed']


def test_package_works_without_openvino(monkeypatch, tmp_path):
    """openvino is optional: gpusq_mm.deploy imports without it, and the
    openvino backend fails with how to install it."""
    real = builtins.__import__

    def blocked(name, *args, **kwargs):
        if name == 'openvino' or name.startswith('openvino.'):
            raise ImportError(f'No module named {name!r} (blocked)')
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, '__import__', blocked)
    import gpusq_mm.deploy.openvino as ov_pkg
    with pytest.raises(ImportError, match='pip install'):
        ov_pkg.convert_to_ir(str(tmp_path / 'x.onnx'), str(tmp_path / 'x.xml'))
    with pytest.raises(ImportError, match='pip install'):
        ov_pkg.compile_ir(str(tmp_path / 'x.xml'))


def test_unsigned_activations_keep_the_integers(tmp_path):
    """The OpenVINO form (uint8 activation quantizers, zero point 128)
    dequantizes to exactly the values of the signed Q/DQ graph (run by
    ONNX Runtime, whose Q/DQ arithmetic is exact); a wrong zero point
    would shift every value by 128 steps."""
    from gpusq_mm.deploy.exporter import ort_session
    from gpusq_mm.deploy.openvino.graph import (U8_ZERO_POINT,
                                                unsigned_activations)
    scale = np.array(0.05, np.float32)
    nodes = [helper.make_node('Clip', ['x', 'low'], ['c']),
             helper.make_node('QuantizeLinear', ['c', 's', 'z'], ['q']),
             helper.make_node('DequantizeLinear', ['q', 's', 'z'], ['y'])]
    inits = [numpy_helper.from_array(-127 * scale, 'low'),
             numpy_helper.from_array(scale, 's'),
             numpy_helper.from_array(np.array(0, np.int8), 'z')]
    graph = helper.make_graph(
        nodes, 'g', [helper.make_tensor_value_info('x', TensorProto.FLOAT,
                                                   [64])],
        [helper.make_tensor_value_info('y', TensorProto.FLOAT, [64])], inits)
    model = helper.make_model(graph, opset_imports=[
        helper.make_opsetid('', 17)])
    x = np.linspace(-8, 8, 64, dtype=np.float32)
    x[:3] = [-127.5 * 0.05, 127.5 * 0.05, 300]  # the saturation edges

    def run(m):
        return ort_session(m.SerializeToString(), 1).run(None, {'x': x})[0]

    ref = run(model)
    assert unsigned_activations(model) == ['q']  # the one (unnamed) Q
    q, dq = model.graph.node[1:]
    assert q.input[2] == dq.input[2] == U8_ZERO_POINT
    np.testing.assert_array_equal(run(model), ref)
    assert ref.min() == pytest.approx(-127 * 0.05)
    wrong = onnx.ModelProto()
    wrong.CopyFrom(model)
    wrong.graph.initializer.append(numpy_helper.from_array(
        np.array(0, np.uint8), 'z0'))
    wrong.graph.node[2].input[2] = 'z0'  # a wrong zero point: 128 steps
    assert np.abs(run(wrong) - ref).max() > 100 * 0.05

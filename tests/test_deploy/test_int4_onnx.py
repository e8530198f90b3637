"""W4A8 export: the 4-bit weights as INT4 initializers behind opset-21
DequantizeLinear; ONNX Runtime runs that file and agrees with the int8
container file."""
import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto

from gpusq_mm.deploy.exporter import export_onnx, run_ort
from gpusq_mm.deploy.int4 import to_int4, write_int4_onnx
from gpusq_mm.deploy.qdq import build_deploy_model
from gpusq_mm.deploy.verify import weight_initializers

from .test_qdq import Net, _gpusq


@pytest.fixture
def w4_files(tmp_path):
    model = Net().eval()
    sparse = _gpusq(model, weight_bits=4)
    deploy, info = build_deploy_model(model, sparse)
    x = torch.randn(2, 16, 8, 8)
    src = str(tmp_path / 'w4.onnx')
    export_onnx(deploy, x, src, ['out'])
    names = sorted(weight_initializers(onnx.load(src),
                                       sorted(info.quantized)).values())
    dst = str(tmp_path / 'w4.int4.onnx')
    facts = write_int4_onnx(src, dst, names)
    return model, x, src, dst, names, facts


def test_int4_initializers_and_parity(w4_files):
    model, x, src, dst, names, facts = w4_files
    graph = onnx.load(dst)
    assert facts['int4_initializers'] == len(names) == 4
    assert [o.version for o in graph.opset_import if o.domain == ''] == [21]
    types = {i.name: i.data_type for i in graph.graph.initializer}
    assert all(types[n] == TensorProto.INT4 for n in names)
    assert facts['bytes'] < facts['int8_file_bytes']
    got, int8 = run_ort(dst, x)[0], run_ort(src, x)[0]
    with torch.no_grad():
        ref = model(x)[0].numpy()
    np.testing.assert_allclose(got, int8, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-5)


def test_int8_values_are_refused(tmp_path):
    model = Net().eval()
    sparse = _gpusq(model, weight_bits=8)
    deploy, info = build_deploy_model(model, sparse)
    src = str(tmp_path / 'w8.onnx')
    export_onnx(deploy, torch.randn(1, 16, 8, 8), src, ['out'])
    names = list(weight_initializers(onnx.load(src), ['fc1']).values())
    with pytest.raises(ValueError, match='not a 4-bit weight'):
        to_int4(onnx.load(src), names)

"""build_engine.sh (strongly typed, sparse, the configured shapes) and the
TensorRT log parsing; the deploy configs themselves."""
import glob
import json
import os
import os.path as osp

import pytest
from mmengine.config import Config

from gpusq_mm.deploy.codebases import CODEBASES
from gpusq_mm.deploy.tensorrt.build import (engine_unavailable_reason,
                                            input_shapes,
                                            sparse_layers_from_log,
                                            write_build_script)
from tests.utils import REPO

DEPLOY = osp.join(REPO, 'configs', 'deploy')
LEAVES = sorted(p for p in glob.glob(osp.join(DEPLOY, '*', '*.py'))
                if '_base_' not in p)


def _script(tmp_path, leaf: str) -> str:
    cfg = Config.fromfile(osp.join(DEPLOY, leaf))
    path = write_build_script(cfg, str(tmp_path))
    assert os.access(path, os.X_OK)
    lines = open(path).read().splitlines()
    assert lines[0] == '#!/usr/bin/env bash'
    return '\n'.join(ln for ln in lines if not ln.startswith('#'))


def test_static_int8_sparse_script(tmp_path):
    text = _script(tmp_path, 'detection/'
                   'detection_tensorrt-int8-sparse_static-800x1344.py')
    for flag in ('--onnx=end2end.onnx', '--saveEngine=end2end.engine',
                 '--stronglyTyped', '--sparsity=enable',
                 '--shapes=input:1x3x800x1344',
                 '--timingCacheFile=timing.cache',
                 '--exportLayerInfo=layer_info.json',
                 '--profilingVerbosity=detailed',
                 '--memPoolSize=workspace:1024M'):
        assert flag in text, flag
    for banned in ('--int8', '--fp16', '--best', 'force', 'minShapes'):
        assert banned not in text, banned


def test_dynamic_script_has_profile(tmp_path):
    text = _script(tmp_path, 'segmentation/segmentation_tensorrt-int8-'
                   'sparse_dynamic-512x512-1024x1024.py')
    assert '--minShapes=input:1x3x512x512' in text
    assert '--optShapes=input:1x3x512x512' in text
    assert '--maxShapes=input:1x3x1024x1024' in text
    assert '--stronglyTyped' in text and '--sparsity=enable' in text
    text = _script(tmp_path, 'classification/classification_tensorrt-int8-'
                   'sparse_dynamic-224x224.py')
    assert '--optShapes=input:8x3x224x224' in text
    assert '--maxShapes=input:32x3x224x224' in text


def test_dense_fp16_script_has_no_sparsity(tmp_path):
    text = _script(tmp_path, 'classification/classification_tensorrt-'
                   'fp16-dense_static-224x224.py')
    assert '--stronglyTyped' in text and '--sparsity' not in text
    assert '--fp16' not in text and '--shapes=input:1x3x224x224' in text


def test_sparsity_log_parsing():
    lines = [
        '[I] [TRT] (Sparsity) Layers eligible for sparse math: '
        '/backbone/qkv/MatMul, /backbone/fc1/MatMul',
        '[I] [TRT] (Sparsity) TRT inference plan picked sparse '
        'implementation for layers: /backbone/fc1/MatMul',
        '[I] [TRT] Total Activation Memory: 123',
    ]
    assert sparse_layers_from_log(lines) == dict(
        eligible=['/backbone/qkv/MatMul', '/backbone/fc1/MatMul'],
        picked=['/backbone/fc1/MatMul'])


def test_engine_skip_reason_here():
    reason = engine_unavailable_reason()
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        assert 'tensorrt' in reason
    else:  # pragma: no cover - TensorRT hosts
        import torch
        assert (reason == '') == torch.cuda.is_available()


@pytest.mark.parametrize('leaf', LEAVES, ids=osp.basename)
def test_deploy_config(leaf):
    cfg = Config.fromfile(leaf)
    assert cfg.onnx_config.opset_version >= 17
    assert cfg.codebase_config.type in CODEBASES
    assert cfg.gpusq_config.precision in ('fp32', 'fp16')
    backend = cfg.backend_config
    assert backend.type in ('onnxruntime', 'tensorrt', 'openvino')
    if backend.type == 'openvino':  # FP32 weights and inference precision
        assert backend.common_config.compress_to_fp16 is False
        assert backend.common_config.inference_precision == 'f32'
    if backend.type == 'tensorrt':
        common = backend.common_config
        assert common.strongly_typed and 'fp16_mode' not in common
        assert common.sparse_weights == cfg.gpusq_config.quantize
        assert cfg.gpusq_config.precision == 'fp16'
        assert cfg.onnx_config.opset_version >= 19  # FP16 Q/DQ scales
        profile = input_shapes(cfg)['input']
        dynamic = (cfg.onnx_config.get('dynamic_axes') or {}).get('input')
        if not dynamic:  # static: batch 1 at input_shape [W, H]
            w, h = cfg.onnx_config.input_shape
            assert 'model_inputs' not in backend
            assert profile == dict(min_shape=[1, 3, h, w],
                                   opt_shape=[1, 3, h, w],
                                   max_shape=[1, 3, h, w])
        else:
            assert profile['min_shape'] != profile['max_shape']
    else:
        assert cfg.gpusq_config.precision == 'fp32'


def test_engine_facts_from_trtexec_outputs(tmp_path):
    from gpusq_mm.deploy.tensorrt.build import engine_facts_from_dir
    layer_info = dict(Layers=[
        dict(Name='/fc1/MatMul', LayerType='CaskGemm',
             Inputs=[dict(Name='x', **{'Format/Datatype': 'Row major Int8'})],
             Outputs=[dict(Name='y', **{'Format/Datatype': 'Half'})],
             TacticName='sm80_xmma_sparse_gemm_i8i8_f16'),
        dict(Name='/norm/LayerNorm', LayerType='Norm',
             Inputs=[dict(Name='y', **{'Format/Datatype': 'Half'})],
             Outputs=[dict(Name='z', **{'Format/Datatype': 'Half'})],
             TacticName='layernorm_kernel'),
    ], Bindings=['input', 'logits'])
    (tmp_path / 'layer_info.json').write_text(json.dumps(layer_info))
    (tmp_path / 'build_engine.log').write_text(
        '[I] [TRT] (Sparsity) Layers eligible for sparse math: /fc1/MatMul\n'
        '[I] [TRT] (Sparsity) TRT inference plan picked sparse '
        'implementation for layers: /fc1/MatMul\n')
    facts = engine_facts_from_dir(str(tmp_path))
    assert facts['num_layers'] == 2
    assert facts['int8_layers'] == ['/fc1/MatMul']
    assert facts['sparse_tactic_layers'] == ['/fc1/MatMul']
    assert facts['sparsity']['picked'] == ['/fc1/MatMul']

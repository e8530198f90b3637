"""Deployment: fake quantization folded into explicit Q/DQ, ONNX export
with 2:4 int8 weights, graph checks, parity, the report (DESIGN.md
section 6), and one folder per backend (:mod:`.onnxruntime`,
:mod:`.openvino`, :mod:`.tensorrt`) and per codebase
(:mod:`.codebases`)."""
from .codebases import (CODEBASES, BaseExporter, UnsupportedModelError,
                        build_exporter)
from .exporter import export_onnx, run_ort, run_torch
from .loader import NotGPUSQCheckpointError, load_deploy_model
from .onnxruntime import lower_file, lower_for_ort
from .pipeline import DeployPipeline, ParityError
from .qdq import DeployInfo, build_deploy_model, keep_used_layers
from .tensorrt import build_engine, convert_to_fp16, write_build_script
from .verify import DeployVerifyError, verify_qdq, verify_sparse

__all__ = [
    'CODEBASES', 'BaseExporter', 'UnsupportedModelError', 'build_exporter',
    'build_engine', 'write_build_script', 'export_onnx', 'run_ort',
    'run_torch', 'convert_to_fp16', 'NotGPUSQCheckpointError',
    'load_deploy_model', 'lower_for_ort', 'lower_file', 'DeployPipeline',
    'ParityError', 'DeployInfo',
    'build_deploy_model', 'keep_used_layers',
    'DeployVerifyError', 'verify_qdq', 'verify_sparse'
]

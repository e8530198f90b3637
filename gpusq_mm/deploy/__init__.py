"""Deployment: fake quantization folded into explicit Q/DQ, ONNX export
with 2:4 int8 weights, graph checks, ONNX Runtime parity, TensorRT build
script/engine and the report (DESIGN.md section 6)."""
from .codebases import (CODEBASES, BaseExporter, UnsupportedModelError,
                        build_exporter)
from .engine import build_engine, write_build_script
from .exporter import export_onnx, run_ort, run_torch
from .fp16 import convert_to_fp16
from .loader import NotGPUSQCheckpointError, load_deploy_model
from .ort_lowering import lower_file, lower_for_ort
from .pipeline import DeployPipeline, ParityError
from .qdq import DeployInfo, build_deploy_model, keep_used_layers
from .quick import quick_gpusq
from .verify import DeployVerifyError, verify_qdq, verify_sparse

__all__ = [
    'CODEBASES', 'BaseExporter', 'UnsupportedModelError', 'build_exporter',
    'build_engine', 'write_build_script', 'export_onnx', 'run_ort',
    'run_torch', 'convert_to_fp16', 'NotGPUSQCheckpointError',
    'load_deploy_model', 'lower_for_ort', 'lower_file', 'DeployPipeline',
    'ParityError', 'DeployInfo',
    'build_deploy_model', 'keep_used_layers', 'quick_gpusq',
    'DeployVerifyError', 'verify_qdq', 'verify_sparse'
]

"""OpenVINO backend: the verified Q/DQ ONNX converted to OpenVINO IR
(``end2end.xml``/``.bin``), run on the CPU plugin for parity and latency,
with the facts the deploy report states (int8 weight bytes, layers run in
int8). ``openvino`` is optional: importing this package does not import it.
"""
from .convert import convert_to_ir, ir_weight_bytes, require_openvino
from .runtime import OVRunner, compile_ir, execution_precisions, run_ir

__all__ = [
    'convert_to_ir', 'ir_weight_bytes', 'require_openvino', 'OVRunner',
    'compile_ir', 'execution_precisions', 'run_ir'
]

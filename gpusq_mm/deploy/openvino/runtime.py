"""OpenVINO CPU execution of an IR or ONNX file: outputs, the runtime
model's execution precisions and per-layer performance counters."""
from typing import Dict, List, Optional, Sequence, Union

import numpy as np

from .convert import require_openvino

#: Layer types of OpenVINO's CPU runtime model that hold the GEMMs and
#: convolutions (the layers int8 is for).
GEMM_TYPES = ('FullyConnected', 'MatMul', 'Convolution', 'GroupConvolution',
              'Deconvolution')
INT8 = ('i8', 'u8')


def compile_ir(path: str, threads: int = 0, precision: str = 'f32',
               perf_counters: bool = False, device: str = 'CPU'):
    """Compile an IR (``.xml``) or ONNX file for the CPU plugin.

    Args:
        path (str): Model file.
        threads (int): ``INFERENCE_NUM_THREADS`` (0: OpenVINO's default).
            Defaults to 0.
        precision (str): ``INFERENCE_PRECISION_HINT`` of the float parts.
            'f32' (default) keeps FP32 where the graph is FP32: on CPUs
            with bf16 (AMX, AVX-512 BF16) OpenVINO would otherwise run
            them in bf16, and it would quantize the float activations of
            GEMMs with int8 weights but no activation Q/DQ on the fly
            (dynamic quantization, off with 'f32').
        perf_counters (bool): Collect per-layer counters (``PERF_COUNT``).
            Defaults to False.
        device (str): OpenVINO device. Defaults to 'CPU'.

    Returns:
        openvino.CompiledModel: Latency mode, one stream.
    """
    ov = require_openvino()
    config = {'PERFORMANCE_HINT': 'LATENCY', 'NUM_STREAMS': 1,
              'PERF_COUNT': perf_counters}
    if precision:
        config['INFERENCE_PRECISION_HINT'] = precision
    if precision == 'f32':
        config['DYNAMIC_QUANTIZATION_GROUP_SIZE'] = 0
    if threads:
        config['INFERENCE_NUM_THREADS'] = threads
    core = ov.Core()
    return core.compile_model(core.read_model(path), device, config)


class OVRunner:
    """``inputs -> list of outputs`` on one infer request of a compiled
    model (the same calling convention as the ONNX Runtime runners).

    Args:
        compiled (openvino.CompiledModel): See :func:`compile_ir`.
    """

    def __init__(self, compiled) -> None:
        self.compiled = compiled
        self.request = compiled.create_infer_request()

    def __call__(self, inputs) -> List[np.ndarray]:
        if hasattr(inputs, 'detach'):
            inputs = inputs.detach().cpu().numpy()
        self.request.infer({0: np.ascontiguousarray(inputs,
                                                    dtype=np.float32)})
        return [np.array(self.request.get_output_tensor(i).data)
                for i in range(len(self.compiled.outputs))]


def _rt(op, key: str) -> str:
    info = op.get_rt_info()
    return info[key].astype(str) if key in info else ''


def _layer_name(op) -> str:
    """The ONNX node a runtime layer came from (of the fused originals,
    the GEMM/conv one where it is named)."""
    names = [n for n in _rt(op, 'originalLayersNames').split(',') if n]
    for name in names:
        if any(k in name for k in ('MatMul', 'Gemm', 'Conv')):
            return name
    return names[0] if names else op.get_friendly_name()


def execution_precisions(compiled) -> dict:
    """What the CPU plugin actually runs, from its runtime model.

    Returns:
        dict: ``gemm_layers`` (GEMM/conv layers), ``int8_gemm_layers``
        (those executed in i8/u8), ``int8_layers`` (their original ONNX
        node names), ``float_gemm_layers`` (names of the others) and
        ``by_type`` (``{layer type: {precision: count}}``, every executed
        layer).
    """
    by_type: Dict[str, Dict[str, int]] = {}
    int8, other = [], []
    for op in compiled.get_runtime_model().get_ordered_ops():
        kind, prec = _rt(op, 'layerType'), _rt(op, 'runtimePrecision')
        if kind in ('Const', 'Input', 'Output'):
            continue
        counts = by_type.setdefault(kind, {})
        counts[prec] = counts.get(prec, 0) + 1
        if kind in GEMM_TYPES:
            (int8 if prec in INT8 else other).append(_layer_name(op))
    return dict(gemm_layers=len(int8) + len(other),
                int8_gemm_layers=len(int8), int8_layers=int8,
                float_gemm_layers=other, by_type=by_type)


def run_ir(path: Union[str, object], inputs, threads: int = 0,
           precision: Optional[str] = 'f32') -> Sequence[np.ndarray]:
    """Compile ``path`` and run it once on ``inputs``."""
    return OVRunner(compile_ir(path, threads, precision))(inputs)

"""The peer INT8 graphs of the CPU benchmark: ONNX Runtime's own static
quantizer applied to the FP32 export, in each of its settings (activation
type U8/S8 x weight S8, QDQ or QOperator format), so that the peer is timed
in its best setting on each runtime."""
import os.path as osp
from typing import Dict, List, Sequence

import numpy as np

#: ``{name: (activation type, format)}``; weights are S8, per channel.
PEER_SETTINGS = {
    'u8s8_qdq': ('QUInt8', 'QDQ'),
    's8s8_qdq': ('QInt8', 'QDQ'),
    'u8s8_qoperator': ('QUInt8', 'QOperator'),
    's8s8_qoperator': ('QInt8', 'QOperator'),
}


def quantize_peers(fp32_path: str, out_dir: str,
                   calib: Sequence[np.ndarray],
                   settings: Sequence[str] = tuple(PEER_SETTINGS),
                   input_name: str = 'input') -> Dict[str, str]:
    """``onnxruntime.quantization.quantize_static`` of ``fp32_path`` in
    each of ``settings`` (keys of :data:`PEER_SETTINGS`), per-channel S8
    weights, MinMax calibration on ``calib``, MatMul/Gemm/Conv quantized.

    Returns:
        dict: ``{'ort_qs_<setting>': path}``.
    """
    from onnxruntime.quantization import (CalibrationDataReader, QuantFormat,
                                          QuantType, quantize_static)

    class Reader(CalibrationDataReader):

        def __init__(self) -> None:
            self.data = iter([{input_name: x} for x in calib])

        def get_next(self):
            return next(self.data, None)

    paths = {}
    for name in settings:
        act, fmt = PEER_SETTINGS[name]
        path = osp.join(out_dir, f'ort_qs_{name}.onnx')
        quantize_static(fp32_path, path, Reader(),
                        quant_format=getattr(QuantFormat, fmt),
                        per_channel=True,
                        activation_type=getattr(QuantType, act),
                        weight_type=QuantType.QInt8,
                        op_types_to_quantize=['MatMul', 'Gemm', 'Conv'])
        paths[f'ort_qs_{name}'] = path
    return paths


def best_of(medians: Dict[str, float], prefix: str) -> str:
    """The label with the smallest median among those starting with
    ``prefix`` ('' when there is none)."""
    found = {k: v for k, v in medians.items() if k.startswith(prefix)}
    return min(found, key=found.get) if found else ''


def random_calib(shape: Sequence[int], n: int,
                 seed: int = 1) -> List[np.ndarray]:
    """``n`` standard-normal float32 batches of ``shape`` (seeded)."""
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape).astype(np.float32) for _ in range(n)]

"""OpenVINO form of the Q/DQ export: activation quantizers on uint8.

OpenVINO's CPU plugin turns each activation ``QuantizeLinear ->
DequantizeLinear`` into a ``FakeQuantize`` and runs the GEMM behind it in
int8; with signed activations (zero point 0, our export) it picks its
``FullyConnectedQuantizedLegacy`` kernels, with unsigned ones (zero point
128, as ONNX Runtime's U8S8 quantizer writes them) its ``FullyConnected``
int8 kernels. :func:`unsigned_activations` rewrites the zero points only:
``QuantizeLinear(x, s, 128)`` gives ``round(x / s) + 128``, the signed
integers shifted by 128, and every reader dequantizes with the same zero
point, so the dequantized values are those of the signed graph (the narrow
range ``[-127, 127]`` stays: the ``Clip`` before each quantizer is kept).

Measured on a 2-core AMX Xeon (DeiT-S 224, batch 1, OpenVINO 2026.4,
interleaved): 13.13 ms with uint8 activations vs 12.37 ms as exported, so
the ``openvino`` deploy configs leave it off
(``common_config.unsigned_activations=False``).
"""
from typing import List

import numpy as np

#: Name of the shared uint8 zero point (128) initializer.
U8_ZERO_POINT = 'gpusq_ov_u8_zero_point'


def _scalar_int8_zero(consts: dict, name: str) -> bool:
    value = consts.get(name)
    return value is not None and value.dtype == np.int8 and \
        value.size == 1 and int(value.reshape(())) == 0


def unsigned_activations(model) -> List[str]:
    """Give every per-tensor activation quantizer whose readers are all
    ``DequantizeLinear`` s a uint8 zero point of 128 (in place).

    Weight quantizers (int8 initializers behind a ``DequantizeLinear``)
    are not touched.

    Args:
        model (onnx.ModelProto): The Q/DQ export.

    Returns:
        list[str]: Names of the rewritten ``QuantizeLinear`` nodes.
    """
    from ..onnxruntime.graph import GraphIndex
    g = GraphIndex(model)
    done = []
    for q in g.graph.node:
        if q.op_type != 'QuantizeLinear' or len(q.input) < 3:
            continue
        users = g.readers.get(q.output[0], [])
        if not users or any(u.op_type != 'DequantizeLinear' or
                            u.input[2:3] != q.input[2:3] for u in users):
            continue
        if not _scalar_int8_zero(g.consts, q.input[2]):
            continue
        for node in (q, *users):
            node.input[2] = U8_ZERO_POINT
        done.append(q.name or q.output[0])
    if done:
        g.initializer(U8_ZERO_POINT, np.array(128, np.uint8))
    return done

"""ONNX Runtime lowering of an explicit Q/DQ export (CPU backend only).

The TensorRT graph keeps ``DequantizeLinear(int8 weight)`` in front of every
quantized GEMM/convolution (DESIGN.md section 6). ONNX Runtime's CPU provider
fuses ``DQ -> MatMul`` into ``MatMulIntegerToFloat`` but a ``Conv`` needs a
``DQ -> Conv -> Q`` triple to become ``QLinearConv``; without the output Q
each convolution runs in FP32 behind a weight ``DequantizeLinear`` evaluated
at every call, and the constant-weight optimisations (NCHWc layout, bias and
activation fusion, BatchNorm folding) are lost.

:func:`lower_for_ort` rewrites only what keeps the numerics:

- the weight ``DequantizeLinear`` of a ``Conv`` becomes a float initializer
  with the very values ONNX Runtime computes, ``float(q - zero_point) *
  scale`` in float32 (one exact int-to-float conversion and one rounded
  product, as the kernel does);
- 1x1 convolutions next to a token-layout Reshape/Transpose (SegFormer's
  Mix-FFN) run as ``MatMul`` in NHWC on the same int8 tensors, which ONNX
  Runtime fuses into ``MatMulIntegerToFloat``
  (:func:`pointwise_conv_to_matmul`), and the token-layout transposes
  around them fold into one ``Reshape`` each
  (:func:`.layout.fold_layout_transposes`);
- a ``Clip`` between a float ``Conv`` and a ``QuantizeLinear`` becomes the
  equal ``Max`` (:func:`clip_to_max`), and the ``(1, 1, N)`` biases of float
  ``MatMul`` s become ``(N, )`` (:func:`flatten_matmul_bias`);
- the int8 GEMMs become explicit ``MatMulIntegerToFloat`` nodes on uint8
  activations with the bias inside, and the narrow-range ``Clip`` of each
  activation quantizer moves behind it onto the integers
  (:mod:`.int8`: the same int8 values, shifted by 128);
- activation ``QuantizeLinear``/``DequantizeLinear`` pairs stay: they are the
  fake-quantized model's numerics.

With the same kernels the lowered graph gives the Q/DQ graph's outputs exactly
(ONNX Runtime with ``NchwcTransformer`` disabled); by default ONNX Runtime runs
the now constant-weight convolutions in its NCHWc layout, whose float summation
order differs, so a value lying on a rounding boundary of the next quantizer
can move by one int8 step (the same kind of difference as between ONNX
Runtime and PyTorch).
"""
from typing import Dict, List, Tuple

import numpy as np

from .graph import constants, dequantize, node_maps, quant_axis, remove_unused
from .int8 import integer_matmuls, quantize_then_clip
from .layout import fold_layout_transposes
from .pointwise import pointwise_conv_to_matmul

#: ``ModelProto.doc_string`` marker of a lowered model.
LOWERED_TAG = 'gpusq_mm.ort_lowering'
#: Largest relative output difference (``max|a - b| / max|a|``) between the
#: lowered and the Q/DQ model when ONNX Runtime runs both with the same
#: kernels (``NchwcTransformer`` disabled); checked by the tests.
LOWERED_MAX_REL_DIFF = 1e-5


def max_rel_diff(ref: np.ndarray, other: np.ndarray) -> float:
    """``max|ref - other| / max|ref|`` (exact 0.0 for equal arrays)."""
    ref = np.asarray(ref, dtype=np.float64)
    other = np.asarray(other, dtype=np.float64)
    if ref.size == 0:
        return 0.0
    return float(np.abs(ref - other).max() / max(np.abs(ref).max(), 1e-12))


def fold_conv_weight_dq(model) -> List[str]:
    """Replace each ``Conv``'s constant weight ``DequantizeLinear`` by the
    float32 initializer it evaluates to (in place).

    Args:
        model (onnx.ModelProto): Model with explicit Q/DQ.

    Returns:
        list[str]: Names of the ``Conv`` nodes whose weight was folded.
    """
    from onnx import numpy_helper
    graph = model.graph
    consts = constants(graph)
    producer = {o: n for n in graph.node for o in n.output}
    folded = []
    for node in graph.node:
        dq = producer.get(node.input[1]) if node.op_type == 'Conv' else None
        if dq is None or dq.op_type != 'DequantizeLinear' or not all(
                i in consts for i in dq.input if i):
            continue
        zp = consts[dq.input[2]] if len(dq.input) > 2 and dq.input[2] \
            else None
        weight = dequantize(consts[dq.input[0]], consts[dq.input[1]], zp,
                            quant_axis(dq))
        name = dq.output[0] + '_folded'
        if name not in consts:
            graph.initializer.append(numpy_helper.from_array(weight, name))
            consts[name] = weight
        node.input[1] = name
        folded.append(node.name)
    remove_unused(graph)
    return folded


def _fed_by_conv(node, producer: dict, readers: dict) -> bool:
    """Whether ``node``'s input comes from a ``Conv`` through a chain of
    single-reader ``Add``/``Mul``/``BatchNormalization``/``Relu`` nodes
    (what ONNX Runtime folds into the convolution) and ``Identity``."""
    cur = producer.get(node.input[0])
    while cur is not None and len(readers.get(cur.output[0], [])) == 1:
        if cur.op_type == 'Conv':
            return True
        if cur.op_type not in ('Add', 'Mul', 'BatchNormalization', 'Relu',
                               'Identity'):
            return False
        cur = producer.get(cur.input[0])
    return False


def clip_to_max(model) -> int:
    """Rewrite the lower-bound-only ``Clip(x, -127 s)`` between a ``Conv``
    and an activation ``QuantizeLinear`` as ``Max(x, -127 s)`` (in place).

    Both compute ``max(x, low)`` elementwise. With a float weight (after
    :func:`fold_conv_weight_dq`), ONNX Runtime's ``WeightBiasQuantization``
    treats ``Conv -> Clip -> QuantizeLinear`` as a quantized convolution and
    requantizes the weight per tensor and the bias to int32, which changes
    the numerics (and runs slower); ``Max`` is not on its list. Other Clips
    stay (ONNX Runtime's Clip kernel is the faster of the two).

    Args:
        model (onnx.ModelProto): Model with explicit Q/DQ.

    Returns:
        int: Number of ``Clip`` nodes rewritten.
    """
    graph = model.graph
    producer, readers = node_maps(graph)
    count = 0
    for node in graph.node:
        users = readers.get(node.output[0], []) if node.output else []
        if (node.op_type != 'Clip' or len(node.input) != 2 or not users
                or any(u.op_type != 'QuantizeLinear' for u in users)
                or not _fed_by_conv(node, producer, readers)):
            continue
        node.op_type = 'Max'
        del node.attribute[:]
        count += 1
    return count


def flatten_matmul_bias(model) -> int:
    """Give the bias of each ``Add(MatMul(x, W), b)`` with constant 2-D
    ``W`` and ``b`` of shape ``(1, ..., 1, N)`` the shape ``(N, )`` (in
    place; same broadcast, same values).

    ONNX Runtime fuses ``MatMul + Add`` into ``Gemm`` only with a 1-D bias;
    the exported attention projections carry ``(1, 1, N)``.

    Args:
        model (onnx.ModelProto): Model to rewrite.

    Returns:
        int: Number of biases reshaped.
    """
    from onnx import numpy_helper
    graph = model.graph
    consts = constants(graph)
    producer = {o: n for n in graph.node for o in n.output}
    count = 0
    for node in graph.node:
        mm = producer.get(node.input[0]) if node.op_type == 'Add' else None
        if mm is None or mm.op_type != 'MatMul' or mm.input[1] not in consts:
            continue
        weight, bias = consts[mm.input[1]], consts.get(node.input[1])
        if (bias is None or weight.ndim != 2
                or bias.ndim < 2 or bias.shape[-1] != weight.shape[1]
                or bias.size != weight.shape[1]):
            continue
        name = node.input[1] + '_flat'
        if name not in consts:
            consts[name] = bias.reshape(-1)
            graph.initializer.append(
                numpy_helper.from_array(consts[name], name))
        node.input[1] = name
        count += 1
    remove_unused(graph)
    return count


def lower_for_ort(model) -> Tuple[object, dict]:
    """Lower an explicit Q/DQ export for ONNX Runtime's CPU provider.

    Args:
        model (onnx.ModelProto): The TensorRT-style Q/DQ export (not
            modified).

    Returns:
        tuple: The lowered copy and its facts: ``pointwise_to_matmul`` and
        ``conv_weights_folded`` (lists of ``Conv`` names),
        ``integer_matmuls`` (``MatMul`` names), ``layout_reshapes``
        (``Reshape`` names), ``clips_to_max``,
        ``matmul_biases_flattened``, ``clips_moved`` and ``clips_dropped``
        (counts).
    """
    import onnx
    lowered = onnx.ModelProto()
    lowered.CopyFrom(model)
    facts = dict(pointwise_to_matmul=pointwise_conv_to_matmul(lowered),
                 layout_reshapes=fold_layout_transposes(lowered))
    facts.update(conv_weights_folded=fold_conv_weight_dq(lowered),
                 clips_to_max=clip_to_max(lowered),
                 matmul_biases_flattened=flatten_matmul_bias(lowered),
                 integer_matmuls=integer_matmuls(lowered))
    clips = quantize_then_clip(lowered)
    facts.update(clips_moved=clips['moved'], clips_dropped=clips['dropped'])
    lowered.doc_string = (lowered.doc_string + ' ' + LOWERED_TAG).strip()
    onnx.checker.check_model(lowered)
    return lowered, facts


def lowering_counts(facts: dict) -> Dict[str, int]:
    """:func:`lower_for_ort`'s facts as counts (list facts by length)."""
    return {k: len(v) if isinstance(v, list) else int(v)
            for k, v in facts.items()}


def lower_file(src: str, dst: str) -> dict:
    """:func:`lower_for_ort` from ``src`` to ``dst``; returns the facts."""
    import onnx
    lowered, facts = lower_for_ort(onnx.load(src))
    onnx.save(lowered, dst)
    return facts

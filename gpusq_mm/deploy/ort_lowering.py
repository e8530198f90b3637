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
  (:func:`pointwise_conv_to_matmul`);
- a ``Clip`` between a float ``Conv`` and a ``QuantizeLinear`` becomes the
  equal ``Max`` (:func:`clip_to_max`), and the ``(1, 1, N)`` biases of float
  ``MatMul`` s become ``(N, )`` (:func:`flatten_matmul_bias`);
- activation ``QuantizeLinear``/``DequantizeLinear`` pairs stay: they are the
  fake-quantized model's numerics.

``MatMul`` weights keep their DQ (ONNX Runtime fuses those itself). With the
same kernels the lowered graph gives the Q/DQ graph's outputs exactly (ONNX
Runtime with ``NchwcTransformer`` disabled); by default ONNX Runtime runs the
now constant-weight convolutions in its NCHWc layout, whose float summation
order differs, so a value lying on a rounding boundary of the next quantizer
can move by one int8 step (the same kind of difference as between ONNX
Runtime and PyTorch).
"""
from typing import Dict, List, Optional, Tuple

import numpy as np

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


def _constants(graph) -> Dict[str, np.ndarray]:
    """Initializers, ``Constant`` outputs and ``Identity`` of either (the
    exporter's de-duplicated initializers) by name."""
    from onnx import numpy_helper
    consts = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    for node in graph.node:
        if node.op_type == 'Constant' and node.attribute[0].name == 'value':
            consts[node.output[0]] = numpy_helper.to_array(
                node.attribute[0].t)
        elif node.op_type == 'Identity' and node.input[0] in consts:
            consts[node.output[0]] = consts[node.input[0]]
    return consts


def dequantize(q: np.ndarray, scale: np.ndarray,
               zero_point: Optional[np.ndarray], axis: int = 1) -> np.ndarray:
    """``DequantizeLinear`` as ONNX Runtime evaluates it, in float32.

    Args:
        q (np.ndarray): int8/uint8 tensor.
        scale (np.ndarray): float32 scalar or 1-D per-axis scales.
        zero_point (np.ndarray, optional): Same shape as ``scale``.
        axis (int): Quantization axis of 1-D scales. Defaults to 1.

    Returns:
        np.ndarray: float32 ``(q - zero_point) * scale``.
    """
    scale = np.asarray(scale, dtype=np.float32)
    zp = np.zeros_like(scale, dtype=np.int32) if zero_point is None \
        else np.asarray(zero_point).astype(np.int32)
    if scale.ndim == 1 and q.ndim > 1:
        shape = [1] * q.ndim
        shape[axis % q.ndim] = -1
        scale, zp = scale.reshape(shape), zp.reshape(shape)
    return ((q.astype(np.int32) - zp).astype(np.float32) * scale).astype(
        np.float32)


def _axis(node) -> int:
    for attr in node.attribute:
        if attr.name == 'axis':
            return attr.i
    return 1


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
    consts = _constants(graph)
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
                            _axis(dq))
        name = dq.output[0] + '_folded'
        if name not in consts:
            graph.initializer.append(numpy_helper.from_array(weight, name))
            consts[name] = weight
        node.input[1] = name
        folded.append(node.name)
    _remove_unused(graph)
    return folded


def _fed_by_conv(node, producer: dict, readers: dict) -> bool:
    """Whether ``node``'s input comes from a ``Conv`` through a chain of
    single-reader ``Add``/``Mul``/``BatchNormalization``/``Relu`` nodes
    (what ONNX Runtime folds into the convolution)."""
    cur = producer.get(node.input[0])
    while cur is not None and len(readers.get(cur.output[0], [])) == 1:
        if cur.op_type == 'Conv':
            return True
        if cur.op_type not in ('Add', 'Mul', 'BatchNormalization', 'Relu'):
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
    producer = {o: n for n in graph.node for o in n.output}
    readers: Dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
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
    consts = _constants(graph)
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
    _remove_unused(graph)
    return count


def _attrs(node) -> dict:
    from onnx import helper
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _is_pointwise(node) -> bool:
    """A 1x1, stride-1, unpadded, ungrouped, biasless 2-D ``Conv``."""
    attrs = _attrs(node)
    return (node.op_type == 'Conv' and attrs.get('group', 1) == 1
            and list(attrs.get('kernel_shape', [])) == [1, 1]
            and list(attrs.get('strides', [1, 1])) == [1, 1]
            and list(attrs.get('dilations', [1, 1])) == [1, 1]
            and not any(attrs.get('pads', [0] * 4))
            and not (len(node.input) > 2 and node.input[2]))


def _pointwise_chain(conv, producer: dict, readers: dict, consts: dict):
    """``(clip, q, dq_x, dq_w, bias_add)`` of a pointwise ``Conv`` fed by
    ``Clip -> QuantizeLinear -> DequantizeLinear`` and a constant weight
    DQ, that sits next to a token-layout ``Reshape``/``Transpose`` (so the
    layout change cancels) and feeds no ``BatchNormalization``; else None."""
    dq_x, dq_w = producer.get(conv.input[0]), producer.get(conv.input[1])
    q = producer.get(dq_x.input[0]) if dq_x is not None else None
    clip = producer.get(q.input[0]) if q is not None else None
    if (clip is None or dq_x.op_type != 'DequantizeLinear'
            or q.op_type != 'QuantizeLinear'
            or clip.op_type not in ('Clip', 'Max') or dq_w is None
            or dq_w.op_type != 'DequantizeLinear'
            or dq_w.input[0] not in consts or _axis(dq_w) != 0):
        return None
    users = readers.get(conv.output[0], [])
    add = users[0] if len(users) == 1 and users[0].op_type == 'Add' else None
    k = consts[dq_w.input[0]].shape[0]
    if add is not None and (add.input[0] != conv.output[0] or consts.get(
            add.input[1], np.zeros(0)).size != k):
        add = None
    after = readers.get((add or conv).output[0], [])
    before = producer.get(clip.input[0])
    layout = ('Reshape', 'Transpose')
    if any(u.op_type == 'BatchNormalization' for u in after) or not (
            any(u.op_type in layout for u in after)
            or (before is not None and before.op_type in layout)):
        return None
    return clip, q, dq_x, dq_w, add


def pointwise_conv_to_matmul(model) -> List[str]:
    """Run the Mix-FFN style 1x1 convolutions as ``MatMul`` in NHWC, so
    ONNX Runtime fuses their Q/DQ into ``MatMulIntegerToFloat`` (in place).

    ``Clip -> Q -> DQ -> Conv1x1(DQ(w)) [+ b]`` becomes ``Transpose(NHWC) ->
    Clip -> Q -> DQ -> MatMul(DQ(w^T)) [+ b] -> Transpose(NCHW)``: the same
    int8 tensors and scales (Clip and Q are elementwise with one scale, so
    they commute with the transpose); ONNX Runtime's transpose optimizer
    cancels the transposes against the neighbouring token-layout ones. Only
    convolutions next to a ``Reshape``/``Transpose`` and not followed by
    ``BatchNormalization`` are rewritten (elsewhere a float NCHWc convolution
    was measured faster).

    Args:
        model (onnx.ModelProto): Model with explicit Q/DQ (before
            :func:`fold_conv_weight_dq`).

    Returns:
        list[str]: Names of the rewritten ``Conv`` nodes.
    """
    from onnx import helper, numpy_helper
    graph = model.graph
    consts = _constants(graph)
    producer = {o: n for n in graph.node for o in n.output}
    readers: Dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    done = []
    for conv in list(graph.node):
        chain = _pointwise_chain(conv, producer, readers, consts) \
            if _is_pointwise(conv) else None
        if chain is None:
            continue
        clip, q, dq_x, dq_w, add = chain
        p = conv.name or conv.output[0]
        w = consts[dq_w.input[0]]
        graph.initializer.append(numpy_helper.from_array(
            np.ascontiguousarray(w.reshape(w.shape[:2]).T), p + '/w_t'))
        new = [
            helper.make_node('Transpose', [clip.input[0]], [p + '/x_nhwc'],
                             perm=[0, 2, 3, 1], name=p + '/x_nhwc'),
            helper.make_node(clip.op_type, [p + '/x_nhwc', *clip.input[1:]],
                             [p + '/clip'], name=p + '/clip'),
            helper.make_node('QuantizeLinear', [p + '/clip', *q.input[1:]],
                             [p + '/q'], name=p + '/q'),
            helper.make_node('DequantizeLinear', [p + '/q', *dq_x.input[1:]],
                             [p + '/dq'], name=p + '/dq'),
            helper.make_node('DequantizeLinear', [p + '/w_t',
                                                  *dq_w.input[1:]],
                             [p + '/w_dq'], axis=1, name=p + '/w_dq'),
            helper.make_node('MatMul', [p + '/dq', p + '/w_dq'], [p + '/mm'],
                             name=p + '/mm')]
        out, last = p + '/mm', conv
        if add is not None:
            # (1, 1, 1, K): a 1-D bias would make ONNX Runtime fuse a float
            # Gemm before its Q/DQ fusion sees the MatMul
            bias = consts[add.input[1]].reshape(1, 1, 1, -1)
            graph.initializer.append(numpy_helper.from_array(
                bias.astype(np.float32), p + '/bias'))
            new.append(helper.make_node('Add', [out, p + '/bias'],
                                        [p + '/mm_b'], name=p + '/mm_b'))
            out, last = p + '/mm_b', add
        new.append(helper.make_node('Transpose', [out], [last.output[0]],
                                    perm=[0, 3, 1, 2], name=p + '/nchw'))
        index = list(graph.node).index(conv)
        graph.node.remove(conv)
        if add is not None:
            graph.node.remove(add)
        for offset, node in enumerate(new):
            graph.node.insert(index + offset, node)
        done.append(conv.name)
    _remove_unused(graph)
    return done


def _remove_unused(graph) -> None:
    """Drop nodes and initializers nothing reads (DQ left without users)."""
    while True:
        used = {i for n in graph.node for i in n.input}
        used |= {o.name for o in graph.output}
        dead = [n for n in graph.node
                if not any(o in used for o in n.output)]
        if not dead:
            break
        for node in dead:
            graph.node.remove(node)
    used = {i for n in graph.node for i in n.input}
    keep = [i for i in graph.initializer if i.name in used]
    del graph.initializer[:]
    graph.initializer.extend(keep)


def lower_for_ort(model) -> Tuple[object, dict]:
    """Lower an explicit Q/DQ export for ONNX Runtime's CPU provider.

    Args:
        model (onnx.ModelProto): The TensorRT-style Q/DQ export (not
            modified).

    Returns:
        tuple: The lowered copy and its facts: ``pointwise_to_matmul`` and
        ``conv_weights_folded`` (lists of ``Conv`` names),
        ``clips_to_max`` and ``matmul_biases_flattened`` (counts).
    """
    import onnx
    lowered = onnx.ModelProto()
    lowered.CopyFrom(model)
    facts = dict(pointwise_to_matmul=pointwise_conv_to_matmul(lowered))
    facts.update(conv_weights_folded=fold_conv_weight_dq(lowered),
                 clips_to_max=clip_to_max(lowered),
                 matmul_biases_flattened=flatten_matmul_bias(lowered))
    lowered.doc_string = (lowered.doc_string + ' ' + LOWERED_TAG).strip()
    onnx.checker.check_model(lowered)
    return lowered, facts


def lower_file(src: str, dst: str) -> dict:
    """:func:`lower_for_ort` from ``src`` to ``dst``; returns the facts."""
    import onnx
    lowered, facts = lower_for_ort(onnx.load(src))
    onnx.save(lowered, dst)
    return facts

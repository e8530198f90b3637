"""The integer passes of the ONNX Runtime lowering (:mod:`.lowering`):
GEMMs as explicit ``MatMulIntegerToFloat`` on uint8 activations, and the
narrow-range ``Clip`` of each activation quantizer moved behind its
``QuantizeLinear``.

Both keep the Q/DQ graph's int8 values exactly:

- A signed activation ``QuantizeLinear(x, s, 0)`` and the unsigned
  ``QuantizeLinear(x, s, 128)`` give the same integers shifted by 128
  (``round(x / s)`` saturated to ``[-128, 127]`` vs ``[0, 255]``), and
  every reader dequantizes with the same zero point. The x86 int8 GEMM
  kernels of ONNX Runtime (MLAS) take unsigned activations times signed
  weights; its own Q/DQ fusion makes the same switch, but an explicit
  ``MatMulIntegerToFloat`` with int8 activations runs a kernel several times
  slower (measured).
- The exporter writes ``Clip(x, min=-127 s) -> QuantizeLinear`` (the
  symmetric range ``[-127, 127]``); ``QuantizeLinear -> Clip(q, 1, 255)``
  on the uint8 integers gives the same values and costs a quarter of the
  memory traffic. Behind a ``Relu``/``Softmax``/``Sigmoid`` (non-negative
  values) the Clip has nothing to do and is dropped; behind an (erf) GELU,
  whose values are >= -0.16997, too, when that bound is inside the
  quantizer's range (``-0.1701 >= -127 s``: every ``round(x / s)`` is
  >= -127 already).
- The bias of an ``Add`` after the GEMM goes into the kernel
  (``MatMulIntegerToFloat``'s ``bias`` input): the same float sum.
"""
from typing import Dict, List, Optional

import numpy as np

from .graph import GraphIndex, remove_unused, replace_nodes

#: Name of the shared uint8 zero point (128) initializer.
U8_ZERO_POINT = 'gpusq_u8_zero_point'
_U8_LOW, _U8_HIGH = 'gpusq_u8_min127', 'gpusq_u8_max'
#: Producers whose outputs are >= 0 (a ``min=-127 s`` Clip is a no-op).
NON_NEGATIVE = ('Relu', 'Softmax', 'Sigmoid')
#: A lower bound of GELU, ``min x * Phi(x) = -0.169971...`` with a margin
#: for float rounding.
GELU_MIN = -0.1701
MS_DOMAIN = 'com.microsoft'


def _input(node, index: int) -> str:
    return node.input[index] if len(node.input) > index else ''


def _set_input(node, index: int, name: str) -> None:
    while len(node.input) <= index:
        node.input.append('')
    node.input[index] = name


def _movable(g: GraphIndex, q) -> bool:
    """Whether the integers of activation quantizer ``q`` (per tensor,
    zero point 0 or already uint8) can move to uint8: they are no graph
    output and every reader dequantizes them with ``q``'s scale or is an
    integer GEMM."""
    if q is None or q.op_type != 'QuantizeLinear' or \
            q.input[1] not in g.consts or g.consts[q.input[1]].size != 1:
        return False
    zp = _input(q, 2)
    if not (g.zero(zp) or zp == U8_ZERO_POINT) or q.output[0] in g.outputs:
        return False
    readers = g.readers.get(q.output[0], [])
    return all(r.op_type == 'MatMulIntegerToFloat'
               or (r.op_type == 'DequantizeLinear'
                   and _input(r, 1) == q.input[1]) for r in readers)


def _to_uint8(g: GraphIndex, q) -> None:
    """Switch ``q`` and its readers to the uint8 zero point 128."""
    g.initializer(U8_ZERO_POINT, np.array(128, dtype=np.uint8))
    _set_input(q, 2, U8_ZERO_POINT)
    for reader in g.readers.get(q.output[0], []):
        _set_input(reader,
                   2 if reader.op_type == 'DequantizeLinear' else 4,
                   U8_ZERO_POINT)


def _bias_add(g: GraphIndex, mm, columns: int):
    """The ``Add`` of a constant ``columns``-element bias that is the only
    reader of ``mm``'s output, or None."""
    readers = g.readers.get(mm.output[0], [])
    add = readers[0] if len(readers) == 1 else None
    if add is None or add.op_type != 'Add':
        return None
    other = add.input[1] if add.input[0] == mm.output[0] else add.input[0]
    bias = g.consts.get(other)
    if bias is None or bias.size != columns or bias.shape[-1] != columns:
        return None
    return add, other


def integer_matmuls(model) -> List[str]:
    """Rewrite ``MatMul(DQ(q_x), DQ(W_int8))`` ``[+ b]`` as an explicit
    ``com.microsoft.MatMulIntegerToFloat(q_x, W_int8, s_x, s_w, 128, -,
    b)`` on uint8 activations (in place).

    Only GEMMs whose activation quantizer can move to uint8 (see
    :func:`_movable`) and whose weight is a constant 2-D int8
    tensor with zero point 0 are rewritten.

    Args:
        model (onnx.ModelProto): Model with explicit Q/DQ.

    Returns:
        list[str]: Names of the rewritten ``MatMul`` nodes.
    """
    from onnx import helper
    g = GraphIndex(model)
    done = []
    for mm in list(g.graph.node):
        if mm.op_type != 'MatMul':
            continue
        dq_x, dq_w = (g.producer.get(i) for i in mm.input)
        if dq_x is None or dq_w is None or \
                dq_x.op_type != 'DequantizeLinear' or \
                dq_w.op_type != 'DequantizeLinear':
            continue
        weight = g.consts.get(dq_w.input[0])
        q = g.producer.get(dq_x.input[0])
        if not _movable(g, q) or weight is None or weight.ndim != 2 or \
                weight.dtype != np.int8 or not g.zero(_input(dq_w, 2)) or \
                dq_w.input[1] not in g.consts:
            continue
        _to_uint8(g, q)
        inputs = [q.output[0], g.as_initializer(dq_w.input[0]), q.input[1],
                  g.as_initializer(dq_w.input[1]), U8_ZERO_POINT, '']
        out, last = mm.output[0], mm
        bias = _bias_add(g, mm, weight.shape[1])
        if bias is not None:
            add, name = bias
            inputs.append(g.initializer(
                name + '_1d', g.consts[name].reshape(-1).astype(np.float32)))
            out, last = add.output[0], add
        node = helper.make_node('MatMulIntegerToFloat', inputs, [out],
                                name=mm.name + '/int8', domain=MS_DOMAIN)
        replace_nodes(g.graph, [mm] if last is mm else [mm, last], [node])
        g.refresh()
        done.append(mm.name)
    if done and not any(o.domain == MS_DOMAIN for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid(MS_DOMAIN, 1))
    remove_unused(g.graph)
    return done


def _through_identity(g: GraphIndex, name: str):
    node = g.producer.get(name)
    while node is not None and node.op_type == 'Identity':
        node = g.producer.get(node.input[0])
    return node


def _const_of(g: GraphIndex, node, value: float) -> Optional[str]:
    """The input of a two-input ``node`` that is not the scalar constant
    ``value`` (None when neither input is that constant)."""
    for i, other in ((0, 1), (1, 0)):
        const = g.consts.get(node.input[i])
        if const is not None and const.size == 1 and \
                np.isclose(float(const.reshape(())), value, rtol=1e-6):
            return node.input[other]
    return None


def _is_erf_gelu(g: GraphIndex, node) -> bool:
    """Whether ``node`` ends PyTorch's exported exact GELU,
    ``Mul(Mul(x, Add(Erf(Div(x, sqrt 2)), 1)), 0.5)`` (or ``Gelu``)."""
    if node.op_type == 'Gelu':
        return True
    if node.op_type != 'Mul' or len(node.input) != 2:
        return False
    inner = g.producer.get(_const_of(g, node, 0.5) or '')
    if inner is None or inner.op_type != 'Mul':
        return False
    for x, add in ((0, 1), (1, 0)):
        add = g.producer.get(inner.input[add])
        if add is None or add.op_type != 'Add':
            continue
        erf = g.producer.get(_const_of(g, add, 1.0) or '')
        div = g.producer.get(erf.input[0]) \
            if erf is not None and erf.op_type == 'Erf' else None
        if div is not None and div.op_type == 'Div' and \
                _const_of(g, div, 2 ** 0.5) == inner.input[x]:
            return True
    return False


def _lower_bound(g: GraphIndex, node) -> Optional[float]:
    """A lower bound of ``node``'s output values, or None."""
    if node is None:
        return None
    if node.op_type in NON_NEGATIVE:
        return 0.0
    return GELU_MIN if _is_erf_gelu(g, node) else None


def quantize_then_clip(model) -> Dict[str, int]:
    """Move each activation quantizer's ``Clip(x, min=-127 s)`` behind
    its ``QuantizeLinear`` as a uint8 ``Clip(q, 1, 255)``, or drop it
    behind a producer whose values cannot go below ``-127 s``
    (non-negative ones, GELU where ``GELU_MIN >= -127 s``; in place).

    Clips that :func:`.lowering.clip_to_max` made ``Max`` (behind a
    float ``Conv``) and quantizers read by other than DQ / integer GEMMs
    stay.

    Args:
        model (onnx.ModelProto): Model with explicit Q/DQ.

    Returns:
        dict: ``moved`` and ``dropped`` counts.
    """
    from onnx import helper
    g = GraphIndex(model)
    moved = dropped = 0
    for clip in list(g.graph.node):
        readers = g.readers.get(clip.output[0], []) \
            if clip.op_type == 'Clip' and len(clip.input) == 2 else []
        q = readers[0] if len(readers) == 1 else None
        if q is None or q.op_type != 'QuantizeLinear' or \
                clip.input[1] not in g.consts:
            continue
        if not _movable(g, q):
            continue
        scale = float(g.consts[q.input[1]].reshape(()))
        low = float(np.asarray(g.consts[clip.input[1]]).reshape(()))
        if not np.isclose(low, -127 * scale, rtol=1e-6, atol=0):
            continue
        bound = _lower_bound(g, _through_identity(g, clip.input[0]))
        q.input[0] = clip.input[0]
        g.graph.node.remove(clip)
        if bound is not None and bound >= -127 * scale:
            dropped += 1
        else:
            _to_uint8(g, q)
            g.initializer(_U8_LOW, np.array(1, dtype=np.uint8))
            g.initializer(_U8_HIGH, np.array(255, dtype=np.uint8))
            raw = q.output[0] + '_u8'
            out = q.output[0]
            q.output[0] = raw
            index = list(g.graph.node).index(q)
            g.graph.node.insert(index + 1, helper.make_node(
                'Clip', [raw, _U8_LOW, _U8_HIGH], [out],
                name=(q.name or out) + '/min127'))
            moved += 1
        g.refresh()
    remove_unused(g.graph)
    return dict(moved=moved, dropped=dropped)

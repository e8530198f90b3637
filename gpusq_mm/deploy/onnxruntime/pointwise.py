"""The pointwise-convolution pass of the ONNX Runtime lowering
(:mod:`.lowering`): SegFormer-style 1x1 convolutions as int8
``MatMul`` in NHWC."""
from typing import List

import numpy as np

from .graph import (GraphIndex, node_attrs, quant_axis, remove_unused,
                    replace_nodes)


def _is_pointwise(node) -> bool:
    """A 1x1, stride-1, unpadded, ungrouped, biasless 2-D ``Conv``."""
    attrs = node_attrs(node)
    return (node.op_type == 'Conv' and attrs.get('group', 1) == 1
            and list(attrs.get('kernel_shape', [])) == [1, 1]
            and list(attrs.get('strides', [1, 1])) == [1, 1]
            and list(attrs.get('dilations', [1, 1])) == [1, 1]
            and not any(attrs.get('pads', [0] * 4))
            and not (len(node.input) > 2 and node.input[2]))


def _pointwise_chain(g: GraphIndex, conv):
    """``(clip, q, dq_x, dq_w, bias_add)`` of a pointwise ``Conv`` fed by
    ``Clip -> QuantizeLinear -> DequantizeLinear`` and a constant weight
    DQ, that sits next to a token-layout ``Reshape``/``Transpose`` (so the
    layout change cancels) and feeds no ``BatchNormalization``; else None."""
    producer, readers, consts = g.producer, g.readers, g.consts
    dq_x, dq_w = producer.get(conv.input[0]), producer.get(conv.input[1])
    q = producer.get(dq_x.input[0]) if dq_x is not None else None
    clip = producer.get(q.input[0]) if q is not None else None
    if (clip is None or dq_x.op_type != 'DequantizeLinear'
            or q.op_type != 'QuantizeLinear'
            or clip.op_type not in ('Clip', 'Max') or dq_w is None
            or dq_w.op_type != 'DequantizeLinear'
            or dq_w.input[0] not in consts or quant_axis(dq_w) != 0):
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
    g = GraphIndex(model)
    graph, consts = g.graph, g.consts
    done = []
    for conv in list(graph.node):
        chain = _pointwise_chain(g, conv) if _is_pointwise(conv) else None
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
        replace_nodes(graph, [conv] if add is None else [conv, add], new)
        done.append(conv.name)
    remove_unused(graph)
    return done

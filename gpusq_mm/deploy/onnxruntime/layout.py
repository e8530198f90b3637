"""The layout pass of the ONNX Runtime lowering (:mod:`.lowering`):
token-layout transposes that cancel through a ``Reshape``.

Transformers that run convolutions on their tokens (SegFormer's Mix-FFN,
``nlc_to_nchw``/``nchw_to_nlc``) go ``(N, L, C) -> Transpose -> (N, C, L)
-> Reshape -> (N, C, H, W)``. Once
:func:`.pointwise.pointwise_conv_to_matmul` runs the 1x1 convolution in
NHWC, a third ``Transpose`` to ``(N, H, W, C)`` follows; the three together
are one ``Reshape`` of the tokens to ``(N, H, W, C)`` (``L = H * W``
row-major), and likewise on the way back. ONNX Runtime's transpose optimizer
does not see through the ``Reshape``, so the pass rewrites the chains
itself: pure data movement, no value changes.
"""
from typing import List

import numpy as np

from .graph import (constants, node_attrs, node_maps, remove_unused,
                    replace_nodes)

#: (first perm, rank of the Reshape output, last perm, order of the new
#: shape's entries taken from the Reshape's shape).
_CHAINS = (
    ([0, 2, 1], 4, [0, 2, 3, 1], [0, 2, 3, 1]),  # tokens -> NHWC
    ([0, 3, 1, 2], 3, [0, 2, 1], [0, 2, 1]),  # NHWC -> tokens
)


def _perm(node) -> list:
    return list(node_attrs(node).get('perm', [])) \
        if node is not None and node.op_type == 'Transpose' else None


def fold_layout_transposes(model) -> List[str]:
    """Replace ``Transpose -> Reshape -> Transpose`` chains that amount to
    a reshape between token layout ``(N, L, C)`` and NHWC by that one
    ``Reshape`` (in place).

    The chain's inner nodes must have no other readers (``Shape`` of the
    first transpose's output becomes a permuted ``Shape`` of its input,
    which the exporter uses to compute the Reshape's target); the new
    shape is
    the old one's entries permuted (a ``Gather`` on a computed shape, a
    permuted initializer for a constant one without 0 entries past the
    first, since 0 copies the input's dimension at the same index).

    Args:
        model (onnx.ModelProto): Model to rewrite.

    Returns:
        list[str]: Names of the replaced ``Reshape`` nodes.
    """
    from onnx import helper, numpy_helper
    graph = model.graph
    consts = constants(graph)
    done = []
    for chain in _CHAINS:
        while True:
            match = _find_chain(graph, consts, chain)
            if match is None:
                break
            first, reshape, last = match
            order = chain[3]
            _shapes_before(graph, first)
            name = reshape.name or reshape.output[0]
            shape = consts.get(reshape.input[1])
            if shape is not None:
                shape_name, extra = name + '/layout_shape', []
                graph.initializer.append(numpy_helper.from_array(
                    shape[order].astype(np.int64), shape_name))
            else:
                index = numpy_helper.from_array(
                    np.array(order, dtype=np.int64), name + '/layout_order')
                graph.initializer.append(index)
                shape_name = name + '/layout_shape'
                extra = [helper.make_node(
                    'Gather', [reshape.input[1], index.name], [shape_name],
                    axis=0, name=shape_name)]
            new = extra + [helper.make_node(
                'Reshape', [first.input[0], shape_name], [last.output[0]],
                name=name + '/layout')]
            replace_nodes(graph, [first, reshape, last], new)
            done.append(reshape.name)
    remove_unused(graph)
    return done


def _shapes_before(graph, transpose) -> None:
    """Point the ``Shape`` readers of ``transpose``'s output at its input,
    permuting the result with a ``Gather`` (same values)."""
    from onnx import helper, numpy_helper
    perm = _perm(transpose)
    for node in list(graph.node):
        if node.op_type != 'Shape' or node.input[0] != transpose.output[0]:
            continue
        out = node.output[0]
        order = numpy_helper.from_array(np.array(perm, dtype=np.int64),
                                        out + '/layout_perm')
        graph.initializer.append(order)
        node.input[0] = transpose.input[0]
        node.output[0] = out + '/layout_unpermuted'
        position = list(graph.node).index(node) + 1
        graph.node.insert(position, helper.make_node(
            'Gather', [node.output[0], order.name], [out], axis=0,
            name=out + '/layout_gather'))


def _find_chain(graph, consts: dict, chain: tuple):
    """The first ``(Transpose, Reshape, Transpose)`` of ``chain``'s kind
    in ``graph`` whose inner nodes have no other readers (but ``Shape``
    for the first), or None."""
    first_perm, rank, last_perm, _ = chain
    producer, readers = node_maps(graph)
    outputs = {o.name for o in graph.output}

    def only_reader(node):
        users = readers.get(node.output[0], [])
        ok = len(users) == 1 and node.output[0] not in outputs
        return users[0] if ok else None

    for reshape in graph.node:
        if reshape.op_type != 'Reshape' or \
                node_attrs(reshape).get('allowzero', 0):
            continue
        first = producer.get(reshape.input[0])
        last = only_reader(reshape)
        if _perm(first) != first_perm or _perm(last) != last_perm or \
                first.output[0] in outputs or any(
                    r is not reshape and (r.op_type != 'Shape' or r.attribute)
                    for r in readers.get(first.output[0], [])):
            continue
        shape = consts.get(reshape.input[1])
        if shape is not None and (shape.size != rank or
                                  (shape[1:] == 0).any()):
            continue
        if list(graph.node).index(first) > list(graph.node).index(last):
            continue
        return first, reshape, last
    return None

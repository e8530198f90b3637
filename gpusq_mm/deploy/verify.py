"""Checks on the exported graph: 2:4 weights and Q/DQ around every
quantized GEMM/convolution (DESIGN.md section 6)."""
from typing import Dict, List

import numpy as np
import torch

from gpusq_mm.sparsity import count_violations

from .layers import WEIGHT_FLOAT, WEIGHT_INT8

GEMMS = ('MatMul', 'Gemm', 'Conv')


class DeployVerifyError(RuntimeError):
    """The exported graph does not match what the report claims."""


def weight_initializers(model, layers: List[str]) -> Dict[str, str]:
    """Map layer names to the ONNX initializer holding their weight.

    Args:
        model (onnx.ModelProto): The exported model.
        layers (list[str]): Layer names of the PyTorch model.

    Returns:
        dict: ``{layer: initializer name}``; layers without one are absent.
    """
    names = [init.name for init in model.graph.initializer]
    found = {}
    for layer in layers:
        for suffix in (WEIGHT_INT8, WEIGHT_FLOAT):
            tail = f'{layer}.{suffix}'
            hits = [n for n in names if n == tail or n.endswith('.' + tail)]
            if hits:
                found[layer] = hits[0]
                break
    return found


def _as_torch_layout(array: np.ndarray) -> torch.Tensor:
    """Linear weights are stored ``(in, out)``; conv weights as in torch."""
    tensor = torch.from_numpy(np.ascontiguousarray(array))
    return tensor.t() if tensor.dim() == 2 else tensor


def weight_facts(model, layers: List[str]) -> Dict[str, dict]:
    """``{layer: {initializer, dtype, shape, zeros, violations}}`` for the
    layers whose weight initializer is found (2:4 groups along the input
    channels, as :mod:`gpusq_mm.sparsity.pattern` defines them)."""
    from onnx import numpy_helper
    inits = {i.name: i for i in model.graph.initializer}
    facts = {}
    for layer, name in weight_initializers(model, layers).items():
        array = numpy_helper.to_array(inits[name])
        tensor = _as_torch_layout(array)
        facts[layer] = dict(
            initializer=name, dtype=str(array.dtype),
            shape=list(array.shape), zeros=float((array == 0).mean()),
            violations=count_violations(tensor)
            if tensor.shape[1] % 4 == 0 else -1)
    return facts


def verify_sparse(model, sparse_layers: List[str]) -> Dict[str, dict]:
    """Check that every layer called sparse is exactly 2:4 in the graph.

    Args:
        model (onnx.ModelProto): The exported model.
        sparse_layers (list[str]): Layers the report calls 2:4.

    Returns:
        dict: :func:`weight_facts` of the sparse layers.

    Raises:
        DeployVerifyError: A layer's weight is missing from the graph or
            violates 2:4; the message names the layers and counts.
    """
    facts = weight_facts(model, sparse_layers)
    missing = [n for n in sparse_layers if n not in facts]
    bad = [f"{n} ({f['initializer']}): {f['violations']} groups of 4 with "
           'more than 2 non-zeros' for n, f in facts.items()
           if f['violations']]
    if missing or bad:
        raise DeployVerifyError(
            'the exported ONNX does not hold the 2:4 weights the report '
            f'claims: missing {missing[:5]}; not 2:4: {bad[:5]}. The export '
            'changed the weights or the file was modified; re-export it')
    return facts


def _producers(model) -> Dict[str, object]:
    return {out: node for node in model.graph.node for out in node.output}


def _is_act_qdq(producers: Dict[str, object], tensor: str) -> bool:
    """Whether ``tensor`` comes from a ``QuantizeLinear -> DequantizeLinear``
    pair."""
    node = producers.get(tensor)
    if node is None or node.op_type != 'DequantizeLinear':
        return False
    src = producers.get(node.input[0])
    return src is not None and src.op_type == 'QuantizeLinear'


def verify_qdq(model, quantized_layers: List[str]) -> Dict[str, str]:
    """Check the Q/DQ pairs of every quantized layer.

    The layer's int8 weight initializer must feed a ``DequantizeLinear``
    that feeds a GEMM/Conv directly, whose data input comes straight from
    a ``QuantizeLinear -> DequantizeLinear`` pair.

    Returns:
        dict: ``{layer: GEMM node name}``.

    Raises:
        DeployVerifyError: A quantized layer lacks its Q/DQ pattern.
    """
    producers = _producers(model)
    where = weight_initializers(model, quantized_layers)
    found, bad = {}, []
    for layer in quantized_layers:
        weight = where.get(layer)
        gemm = None
        if weight is not None and weight.endswith(WEIGHT_INT8):
            for node in model.graph.node:
                if node.op_type in GEMMS and len(node.input) > 1 and \
                        _producer_input(producers, node.input[1]) == weight:
                    gemm = node
        if gemm is None or not _is_act_qdq(producers, gemm.input[0]):
            bad.append(layer)
            continue
        found[layer] = gemm.name
    if bad:
        raise DeployVerifyError(
            f'quantized layers without Q/DQ on input and weight in the '
            f'exported ONNX: {bad[:5]} ({len(bad)} in all)')
    return found


def _producer_input(producers: Dict[str, object], tensor: str) -> str:
    node = producers.get(tensor)
    if node is None or node.op_type != 'DequantizeLinear':
        return ''
    return node.input[0]


_PASS_THROUGH = ('Transpose', 'Cast', 'Reshape', 'Identity', 'Unsqueeze')


def _is_24(array: np.ndarray, axis: int) -> bool:
    """Whether ``array`` is 2:4 along ``axis`` (rows of that axis, checked
    by :func:`gpusq_mm.sparsity.count_violations`)."""
    rows = np.moveaxis(array, axis, -1).reshape(-1, array.shape[axis])
    return rows.shape[1] % 4 == 0 and count_violations(
        torch.from_numpy(np.ascontiguousarray(rows))) == 0


def gemm_weights(model) -> List[dict]:
    """Every constant GEMM/Conv weight of the graph, read from the graph
    alone (not from any report): per ``MatMul``/``Gemm``/``Conv`` operand
    that comes from an initializer or ``Constant`` (through
    ``DequantizeLinear``, ``Transpose``, ``Cast``, ``Reshape``), whether it
    is stored int8 behind a ``DequantizeLinear`` and whether it is pruned
    (exactly 2:4 along an input-channel axis, at least half zeros, not all
    zeros).

    Returns:
        list[dict]: ``node``, ``weight`` (initializer), ``int8``,
        ``pruned``, ``shape``.
    """
    from onnx import numpy_helper
    consts = {i.name: i for i in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == 'Constant' and node.attribute and \
                node.attribute[0].name == 'value':
            consts[node.output[0]] = node.attribute[0].t
    producers = _producers(model)
    found = []
    for node in model.graph.node:
        if node.op_type not in GEMMS:
            continue
        for tensor in node.input[:2]:
            int8, src = False, producers.get(tensor)
            while tensor not in consts and src is not None and \
                    src.op_type in ('DequantizeLinear', ) + _PASS_THROUGH:
                int8 = int8 or src.op_type == 'DequantizeLinear'
                tensor = src.input[0]
                src = producers.get(tensor)
            if tensor not in consts:
                continue
            array = numpy_helper.to_array(consts[tensor])
            if array.ndim < 2:
                continue
            axes = (1, ) if array.ndim == 4 else (0, array.ndim - 1)
            zeros = float((array == 0).mean())  # all-zero: not pruned
            pruned = 0.5 <= zeros < 1.0 and any(
                _is_24(array, a) for a in axes)
            found.append(dict(node=node.name, weight=tensor,
                              int8=int8 and array.dtype == np.int8,
                              pruned=pruned, shape=list(array.shape)))
    return found


def pruned_float_weights(model) -> List[str]:
    """Pruned (2:4) GEMM/Conv weights of the graph that are not int8 (see
    :func:`gemm_weights`)."""
    return [w['weight'] for w in gemm_weights(model)
            if w['pruned'] and not w['int8']]

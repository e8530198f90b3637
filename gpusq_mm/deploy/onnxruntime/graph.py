"""ONNX graph helpers of the ONNX Runtime lowering
(:mod:`.lowering`): constants by name, ``DequantizeLinear`` as ONNX
Runtime evaluates it, node attributes, producer/reader maps (and
:class:`GraphIndex`, which keeps them with the constants), node replacement,
dead-node removal."""
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np


def constants(graph) -> Dict[str, np.ndarray]:
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


def quant_axis(node) -> int:
    """The ``axis`` attribute of a Q/DQ node (ONNX default 1)."""
    for attr in node.attribute:
        if attr.name == 'axis':
            return attr.i
    return 1


def node_attrs(node) -> dict:
    """A node's attributes as ``{name: value}``."""
    from onnx import helper
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def node_maps(graph) -> Tuple[Dict[str, object], Dict[str, List[object]]]:
    """``(producer, readers)``: the node writing each tensor name, and the
    nodes reading it (graph outputs are not readers)."""
    producer = {o: n for n in graph.node for o in n.output}
    readers: Dict[str, List[object]] = {}
    for node in graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    return producer, readers


def replace_nodes(graph, old: Sequence, new: Sequence) -> None:
    """Remove the nodes ``old`` and insert ``new`` where the last of them
    (in graph order) stood: ``new`` reads what ``old`` read, and what read
    ``old``'s outputs comes after it, so the order stays topological."""
    nodes = list(graph.node)
    position = max(nodes.index(n) for n in old) - (len(old) - 1)
    for node in old:
        graph.node.remove(node)
    for offset, node in enumerate(new):
        graph.node.insert(position + offset, node)


def remove_unused(graph) -> None:
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


class GraphIndex:
    """A model's graph with its constants (:func:`constants`), initializer
    and output names and producer/reader maps (:func:`node_maps`).

    A pass that rewires inputs or adds/removes nodes calls :meth:`refresh`
    to bring the maps up to date; :meth:`initializer` keeps the constants
    current itself.

    Args:
        model (onnx.ModelProto): The model; ``graph`` is ``model.graph``.
    """

    def __init__(self, model) -> None:
        self.model, self.graph = model, model.graph
        self.consts = constants(self.graph)
        self.inits = {i.name for i in self.graph.initializer}
        self.outputs = {o.name for o in self.graph.output}
        self.refresh()

    def refresh(self) -> None:
        self.producer, self.readers = node_maps(self.graph)

    def initializer(self, name: str, value: np.ndarray) -> str:
        """Add ``value`` as initializer ``name`` once; return the name."""
        from onnx import numpy_helper
        if name not in self.inits:
            self.graph.initializer.append(
                numpy_helper.from_array(np.asarray(value), name))
            self.inits.add(name)
            self.consts[name] = np.asarray(value)
        return name

    def as_initializer(self, name: str) -> str:
        """``name`` if it is an initializer, else a copy of the constant it
        names (``Constant``/``Identity`` output) as one; ONNX Runtime
        pre-packs only initializer weights."""
        if name in self.inits:
            return name
        return self.initializer(name + '_init', self.consts[name])

    def zero(self, name: str) -> bool:
        """Whether the optional zero-point input ``name`` is absent or 0."""
        return not name or (name in self.consts
                            and not self.consts[name].any())

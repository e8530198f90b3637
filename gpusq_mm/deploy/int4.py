"""W4A8 weights as real 4-bit ONNX initializers.

``weight_bits=4`` trains weights on the grid ``[-7, 7]`` per output
channel; the deploy export stores them in int8 initializers (what every
backend's Q/DQ fusion consumes). This pass writes a second file whose
4-bit weights are ``INT4`` initializers (two values per byte) feeding
``DequantizeLinear`` with an ``INT4`` zero point, which needs opset 21. The
TorchScript exporter stops at opset 20, so the graph is converted with
``onnx.version_converter`` after export and the initializers are rewritten.

What runs it: ONNX Runtime executes INT4 ``DequantizeLinear`` but fuses
only int8 Q/DQ into integer GEMMs, and TensorRT's INT4 is weight-only
(FP16/BF16 activations, no INT8 x INT4 and no sparse INT4 kernels), so the
deploy step keeps the int8 file as the one to run and this one as the
compact artefact.
"""
import os.path as osp
from typing import Dict, Sequence

import numpy as np

INT4_OPSET = 21
QMAX4 = 7


def _int4_tensor(name: str, values: np.ndarray):
    from onnx import TensorProto, helper
    return helper.make_tensor(name, TensorProto.INT4, list(values.shape),
                              values.astype(np.int8).ravel().tolist())


def to_int4(model, initializers: Sequence[str]):
    """Return a copy of ``model`` at opset 21 whose listed int8 weight
    initializers are INT4 (their DequantizeLinear zero points too).

    Args:
        model (onnx.ModelProto): The exported Q/DQ model.
        initializers (Sequence[str]): Int8 weight initializers holding
            4-bit values.

    Raises:
        ValueError: An initializer is missing, not int8, holds values
            outside [-7, 7], or is not read by a DequantizeLinear.
    """
    import onnx
    from onnx import numpy_helper, version_converter
    model = version_converter.convert_version(model, INT4_OPSET)
    inits = {i.name: i for i in model.graph.initializer}
    readers: Dict[str, list] = {}
    for node in model.graph.node:
        for tensor in node.input:
            readers.setdefault(tensor, []).append(node)
    for name in initializers:
        if name not in inits:
            raise ValueError(f'no initializer {name!r} in the graph')
        array = numpy_helper.to_array(inits[name])
        if array.dtype != np.int8 or np.abs(array).max(initial=0) > QMAX4:
            raise ValueError(f'{name!r} is not a 4-bit weight (dtype '
                             f'{array.dtype}, max |q| '
                             f'{np.abs(array).max(initial=0)})')
        nodes = readers.get(name, [])
        if not nodes or any(n.op_type != 'DequantizeLinear' for n in nodes):
            raise ValueError(f'{name!r} is not read by DequantizeLinear '
                             'only; cannot store it as INT4')
        inits[name].CopyFrom(_int4_tensor(name, array))
        for node in nodes:
            zero = f'{name}_zero_point_int4'
            channels = array.shape[node_axis(node)] if array.ndim else 1
            if zero not in inits:
                tensor = _int4_tensor(zero, np.zeros(channels, np.int8))
                model.graph.initializer.append(tensor)
                inits[zero] = tensor
            if len(node.input) > 2:
                node.input[2] = zero
            else:
                node.input.append(zero)
    onnx.checker.check_model(model)
    return model


def node_axis(node) -> int:
    """The ``axis`` attribute of a DequantizeLinear node (default 1)."""
    for attr in node.attribute:
        if attr.name == 'axis':
            return int(attr.i)
    return 1


def write_int4_onnx(src: str, dst: str, initializers: Sequence[str]) -> dict:
    """:func:`to_int4` from file to file.

    Returns:
        dict: ``onnx`` (path), ``int4_initializers`` (count),
        ``bytes`` and ``int8_file_bytes``.
    """
    import onnx
    model = to_int4(onnx.load(src), initializers)
    onnx.save(model, dst)
    return dict(onnx=dst, opset=INT4_OPSET,
                int4_initializers=len(initializers),
                bytes=osp.getsize(dst), int8_file_bytes=osp.getsize(src))

"""FP16 outside the quantized regions, for strongly typed TensorRT.

A strongly typed network takes each tensor's precision from the graph, so
the TensorRT flavour stores float initializers and constants in FP16; the
int8 weights and the Q/DQ pairs stay (with FP16 scales, which needs
opset >= 19). The graph's inputs and outputs stay FP32 behind ``Cast``
nodes, so callers feed and read the same tensors as the FP32 export.
"""
from typing import Set

import numpy as np

FP16_MIN_OPSET = 19
# inputs that ONNX requires to be float32 whatever the data type
_FLOAT32_INPUTS = {('Resize', 1), ('Resize', 2), ('Upsample', 1)}


def _keep_float32(model) -> Set[str]:
    return {node.input[i] for node in model.graph.node
            for op, i in _FLOAT32_INPUTS
            if node.op_type == op and len(node.input) > i}


def convert_to_fp16(model):
    """Return ``model`` (an ``onnx.ModelProto``) with FP16 float math.

    Raises:
        ValueError: The model holds Q/DQ and its opset is below 19 (FP16
            scales are not allowed there).
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    opset = max(o.version for o in model.opset_import if o.domain in ('',
                                                              'ai.onnx'))
    has_qdq = any(n.op_type == 'QuantizeLinear' for n in model.graph.node)
    if has_qdq and opset < FP16_MIN_OPSET:
        raise ValueError(f'FP16 with Q/DQ needs opset >= {FP16_MIN_OPSET} '
                         f'(FP16 scales); the model has opset {opset}. Set '
                         f'onnx_config.opset_version={FP16_MIN_OPSET}')
    keep = _keep_float32(model)
    graph = model.graph
    for init in graph.initializer:
        if init.data_type == TensorProto.FLOAT and init.name not in keep:
            init.CopyFrom(numpy_helper.from_array(
                numpy_helper.to_array(init).astype(np.float16), init.name))
    for node in graph.node:
        if node.op_type == 'Constant' and node.output[0] not in keep:
            for attr in node.attribute:
                if attr.name == 'value' and attr.t.data_type == \
                        TensorProto.FLOAT:
                    attr.t.CopyFrom(numpy_helper.from_array(
                        numpy_helper.to_array(attr.t).astype(np.float16)))
        if node.op_type == 'ConstantOfShape':
            for attr in node.attribute:
                if attr.t.data_type == TensorProto.FLOAT:
                    attr.t.CopyFrom(numpy_helper.from_array(
                        numpy_helper.to_array(attr.t).astype(np.float16)))
        for attr in node.attribute:
            if node.op_type == 'Cast' and attr.name == 'to' and \
                    attr.i == TensorProto.FLOAT and node.output[0] not in keep:
                attr.i = TensorProto.FLOAT16
    _cast_io(graph, helper, TensorProto)
    del graph.value_info[:]
    model = onnx.shape_inference.infer_shapes(model)
    onnx.checker.check_model(model)
    return model


def _cast_io(graph, helper, TensorProto) -> None:
    """Keep FP32 graph inputs/outputs with Casts to/from FP16."""
    new_nodes = [_cast(graph, helper, TensorProto, inp.name, True)
                 for inp in graph.input
                 if inp.type.tensor_type.elem_type == TensorProto.FLOAT]
    tail = [_cast(graph, helper, TensorProto, out.name, False)
            for out in graph.output
            if out.type.tensor_type.elem_type == TensorProto.FLOAT]
    nodes = new_nodes + list(graph.node) + tail
    del graph.node[:]
    graph.node.extend(nodes)


def _cast(graph, helper, TensorProto, name: str, is_input: bool):
    """Rename the graph's uses of the FP32 input/output ``name`` to an FP16
    tensor and return the Cast between the two."""
    half = f'{name}_fp16'
    for node in graph.node:
        fields = (node.input, ) if is_input else (node.output, node.input)
        for field in fields:
            for i, used in enumerate(field):
                if used == name:
                    field[i] = half
    if is_input:
        return helper.make_node('Cast', [name], [half],
                                to=TensorProto.FLOAT16,
                                name=f'{name}_to_fp16')
    return helper.make_node('Cast', [half], [name], to=TensorProto.FLOAT,
                            name=f'{name}_to_fp32')

# Strongly typed TensorRT (10.12+/11): precision comes from the graph's Q/DQ
# and FP16 tensors, never from --int8/--fp16 builder flags; 2:4 weights are
# used through --sparsity=enable (never `force`). The FP16 reference of
# tensorrt-fp16.py plus the INT8 Q/DQ graph (opset 19 for FP16 Q/DQ scales)
# and 2:4 weights.
_base_ = ['./tensorrt-fp16.py']
backend_config = dict(
    common_config=dict(explicit_int8=True, sparse_weights=True))
onnx_config = dict(opset_version=19)
gpusq_config = dict(quantize=True)

_base_ = ['../onnx_config.py']
# Strongly typed TensorRT (10.12+/11): precision comes from the graph's Q/DQ
# and FP16 tensors, never from --int8/--fp16 builder flags; 2:4 weights are
# used through --sparsity=enable (never `force`).
backend_config = dict(
    type='tensorrt',
    common_config=dict(
        max_workspace_size=1 << 30,
        strongly_typed=True,
        explicit_int8=True,
        sparse_weights=True))
onnx_config = dict(opset_version=19)
gpusq_config = dict(quantize=True, precision='fp16')

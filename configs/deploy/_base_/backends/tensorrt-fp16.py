# Dense FP16 TensorRT reference (no Q/DQ, FP16 tensors, strongly typed).
_base_ = ['../onnx_config.py']
backend_config = dict(
    type='tensorrt',
    common_config=dict(
        max_workspace_size=1 << 30,
        strongly_typed=True,
        explicit_int8=False,
        sparse_weights=False))
gpusq_config = dict(quantize=False, precision='fp16')

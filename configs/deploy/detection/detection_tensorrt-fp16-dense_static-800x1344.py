# Dense FP16 engine of the same model (the latency reference): no Q/DQ,
# FP16 tensors, strongly typed, dense math.
_base_ = ['./detection_tensorrt-int8-sparse_static-800x1344.py']
backend_config = dict(
    common_config=dict(explicit_int8=False, sparse_weights=False))
gpusq_config = dict(quantize=False, precision='fp16')
codebase_config = dict(parity=dict(min_match=1.0))

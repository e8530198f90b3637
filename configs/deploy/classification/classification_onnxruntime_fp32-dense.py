# ONNX Runtime (CPU) dense FP32 baseline of the same model.
_base_ = ['./classification_onnxruntime_int8.py']
gpusq_config = dict(quantize=False, precision='fp32')

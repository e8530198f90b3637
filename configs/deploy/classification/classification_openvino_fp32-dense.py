# OpenVINO (CPU) dense FP32 baseline of the same model (FP32 weights in the
# .bin, FP32 inference precision).
_base_ = ['./classification_openvino_int8.py']
gpusq_config = dict(quantize=False, precision='fp32')

# ONNX Runtime (CPU) INT8 with static H and W (the image's size after the
# test pipeline); needed by UPerNet, whose pyramid pooling
# (AdaptiveAvgPool2d) exports only with known input sizes.
_base_ = ['./segmentation_onnxruntime_int8.py']
onnx_config = dict(dynamic_axes=None)

# OpenVINO (CPU) INT8 with static H and W (UPerNet's pyramid pooling needs
# known input sizes; see segmentation_onnxruntime_int8_static.py).
_base_ = ['./segmentation_openvino_int8.py']
onnx_config = dict(dynamic_axes=None)

# OpenVINO (CPU) INT8 end-to-end detector (standard ONNX ops only), with the
# INT8 parity rule of detection_onnxruntime_int8.py (8 of the top 10
# detections must match).
_base_ = ['../_base_/codebases/mmdet.py',
          '../_base_/backends/openvino.py']
codebase_config = dict(parity=dict(min_match=0.8))

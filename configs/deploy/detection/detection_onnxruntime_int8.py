# ONNX Runtime (CPU) INT8 end-to-end detector (standard ONNX ops only).
_base_ = ['../_base_/codebases/mmdet.py',
          '../_base_/backends/onnxruntime.py']

# ONNX Runtime (CPU) INT8, whole-image inference, dynamic H and W.
_base_ = ['../_base_/codebases/mmseg.py',
          '../_base_/backends/onnxruntime.py']
onnx_config = dict(dynamic_axes=_base_.mmseg_dynamic_axes)

# OpenVINO (CPU) INT8: the explicit Q/DQ export as IR, dynamic batch.
_base_ = ['../_base_/codebases/mmpretrain.py',
          '../_base_/backends/openvino.py']
onnx_config = dict(dynamic_axes=dict(input={0: 'batch'}, logits={0: 'batch'}))

# OpenVINO (CPU) INT8, whole-image inference, dynamic H and W.
_base_ = ['../_base_/codebases/mmseg.py',
          '../_base_/backends/openvino.py']
onnx_config = dict(dynamic_axes=dict(
    input={0: 'batch', 2: 'height', 3: 'width'},
    seg_logits={0: 'batch', 2: 'height', 3: 'width'},
    seg_labels={0: 'batch', 1: 'height', 2: 'width'}))

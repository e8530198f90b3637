# ONNX Runtime (CPU) INT8: explicit Q/DQ, FP32 elsewhere, dynamic batch.
_base_ = ['../_base_/codebases/mmpretrain.py',
          '../_base_/backends/onnxruntime.py']
onnx_config = dict(dynamic_axes=dict(input={0: 'batch'}, logits={0: 'batch'}))

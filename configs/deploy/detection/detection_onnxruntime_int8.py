# ONNX Runtime (CPU) INT8 end-to-end detector (standard ONNX ops only).
_base_ = ['../_base_/codebases/mmdet.py',
          '../_base_/backends/onnxruntime.py']
# INT8 parity: 8 of the top 10 detections must match (IoU >= 0.9, same
# label). An activation quantizer's rounding can flip on float-level
# differences between ONNX Runtime and PyTorch, and the RPN's top-k and NMS
# turn one flip into another proposal (measured on the demo's trained Mask
# R-CNN: 8-10 of 10 matched on six validation images; FP32 graphs: 10).
codebase_config = dict(parity=dict(min_match=0.8))

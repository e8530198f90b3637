_base_ = ['../_base_/codebases/mmdet.py',
          '../_base_/backends/tensorrt-int8-sparse.py']
# a static engine: its profile is input_shape ([W, H]) with batch 1
# (min = opt = max); the dynamic variants set backend_config.model_inputs
onnx_config = dict(input_shape=[1344, 800])
# INT8: 8 of the top 10 detections must match (see
# detection_onnxruntime_int8.py)
codebase_config = dict(parity=dict(min_match=0.8))

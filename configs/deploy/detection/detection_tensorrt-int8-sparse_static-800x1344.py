_base_ = ['../_base_/codebases/mmdet.py',
          '../_base_/backends/tensorrt-int8-sparse.py']
onnx_config = dict(input_shape=[1344, 800])
# INT8: 8 of the top 10 detections must match (see
# detection_onnxruntime_int8.py)
codebase_config = dict(parity=dict(min_match=0.8))
backend_config = dict(model_inputs=[
    dict(input_shapes=dict(input=dict(min_shape=[1, 3, 800, 1344],
                                      opt_shape=[1, 3, 800, 1344],
                                      max_shape=[1, 3, 800, 1344])))
])

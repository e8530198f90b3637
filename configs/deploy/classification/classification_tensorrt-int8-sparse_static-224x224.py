_base_ = ['../_base_/codebases/mmpretrain.py',
          '../_base_/backends/tensorrt-int8-sparse.py']
onnx_config = dict(input_shape=[224, 224])
backend_config = dict(model_inputs=[
    dict(input_shapes=dict(input=dict(min_shape=[1, 3, 224, 224],
                                      opt_shape=[1, 3, 224, 224],
                                      max_shape=[1, 3, 224, 224])))
])

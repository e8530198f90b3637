_base_ = ['../_base_/codebases/mmseg.py',
          '../_base_/backends/tensorrt-int8-sparse.py']
onnx_config = dict(input_shape=[512, 512])
backend_config = dict(model_inputs=[
    dict(input_shapes=dict(input=dict(min_shape=[1, 3, 512, 512],
                                      opt_shape=[1, 3, 512, 512],
                                      max_shape=[1, 3, 512, 512])))
])

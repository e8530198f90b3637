_base_ = ['./segmentation_tensorrt-int8-sparse_static-512x512.py']
onnx_config = dict(input_shape=None,
                   dynamic_axes=_base_.mmseg_dynamic_axes)
backend_config = dict(model_inputs=[
    dict(input_shapes=dict(input=dict(min_shape=[1, 3, 512, 512],
                                      opt_shape=[1, 3, 512, 512],
                                      max_shape=[1, 3, 1024, 1024])))
])

_base_ = ['./detection_tensorrt-int8-sparse_static-800x1344.py']
onnx_config = dict(input_shape=None, dynamic_axes=dict(
    input={0: 'batch', 2: 'height', 3: 'width'}))
backend_config = dict(model_inputs=[
    dict(input_shapes=dict(input=dict(min_shape=[1, 3, 320, 320],
                                      opt_shape=[1, 3, 800, 1344],
                                      max_shape=[1, 3, 1344, 1344])))
])

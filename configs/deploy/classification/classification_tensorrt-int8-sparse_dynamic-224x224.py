# Dynamic batch at 224x224 (ViT/DeiT position embeddings fix H and W).
_base_ = ['./classification_tensorrt-int8-sparse_static-224x224.py']
onnx_config = dict(dynamic_axes=dict(input={0: 'batch'}, logits={0: 'batch'}))
backend_config = dict(model_inputs=[
    dict(input_shapes=dict(input=dict(min_shape=[1, 3, 224, 224],
                                      opt_shape=[8, 3, 224, 224],
                                      max_shape=[32, 3, 224, 224])))
])

_base_ = ['../_base_/codebases/mmpretrain.py',
          '../_base_/backends/tensorrt-int8-sparse.py']
# a static engine: its profile is input_shape ([W, H]) with batch 1
# (min = opt = max); the dynamic variants set backend_config.model_inputs
onnx_config = dict(input_shape=[224, 224])

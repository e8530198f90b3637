_base_ = ['../onnx_config.py']
backend_config = dict(type='onnxruntime')

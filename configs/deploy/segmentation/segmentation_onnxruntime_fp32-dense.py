_base_ = ['./segmentation_onnxruntime_int8.py']
gpusq_config = dict(quantize=False, precision='fp32')

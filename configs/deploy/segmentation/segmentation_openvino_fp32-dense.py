_base_ = ['./segmentation_openvino_int8.py']
gpusq_config = dict(quantize=False, precision='fp32')

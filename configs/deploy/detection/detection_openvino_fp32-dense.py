_base_ = ['./detection_openvino_int8.py']
gpusq_config = dict(quantize=False, precision='fp32')
codebase_config = dict(parity=dict(min_match=1.0))  # float: all 10 match

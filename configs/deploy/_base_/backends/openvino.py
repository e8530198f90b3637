# OpenVINO (CPU): the verified Q/DQ ONNX converted to IR (end2end.xml/.bin).
# gpusq keys: compress_to_fp16=False keeps float weights FP32 (OpenVINO's
# save_model default is FP16); inference_precision='f32' keeps the float
# parts FP32 on CPUs with bf16 (AMX / AVX-512 BF16), as PyTorch computes
# them. int8 weights stay int8 in the .bin either way.
# unsigned_activations=True would convert the activation quantizers to uint8
# (zero point 128, the same integers): measured slower on the AMX Xeon here
# (DeiT-S batch 1: 13.13 vs 12.37 ms), so off.
_base_ = ['../onnx_config.py']
backend_config = dict(
    type='openvino',
    common_config=dict(compress_to_fp16=False, inference_precision='f32',
                       unsigned_activations=False))

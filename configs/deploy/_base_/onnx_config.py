# ONNX export settings (mmdeploy's vocabulary). input_shape is [W, H];
# None takes the shape the model's test pipeline gives the image.
onnx_config = dict(
    type='onnx',
    export_params=True,
    keep_initializers_as_inputs=False,
    opset_version=17,
    save_file='end2end.onnx',
    input_names=['input'],
    output_names=None,  # the codebase exporter names its outputs
    input_shape=None,
    optimize=True)
# gpusq: quantize=True folds fake quantization into explicit Q/DQ;
# precision is the float precision outside the quantized regions.
gpusq_config = dict(quantize=True, precision='fp32')

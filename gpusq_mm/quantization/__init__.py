"""Pure-torch INT8 fake quantization (TensorRT explicit-quantization scheme):
placement policy, calibration and fake-quantized layers."""
from .calibrate import calibrate, enable_quant
from .calibrators import CALIBRATORS, amax_from_samples
from .fake_quant import fake_quantize, per_channel_amax
from .policy import insert_quantizers, select_quant_layers
from .quant_layers import QuantConv2d, QuantLinear, quant_layers

__all__ = [
    'CALIBRATORS', 'amax_from_samples', 'calibrate', 'enable_quant', 'fake_quantize',
    'per_channel_amax', 'insert_quantizers', 'select_quant_layers',
    'QuantConv2d', 'QuantLinear', 'quant_layers'
]

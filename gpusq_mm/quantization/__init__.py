"""Pure-torch INT8 fake quantization (TensorRT explicit-quantization scheme):
placement policy, calibration and fake-quantized layers."""
from .attention import (SUPPORTED_ATTENTION, quant_attention_layers,
                        quantize_attention, quantize_mha_gemms)
from .attention_mha import has_quant_gemms
from .calibrate import (calibrate, enable_quant, quant_gemms, range_holders,
                        uncalibrated)
from .calibrators import CALIBRATORS, amax_from_histogram
from .fake_quant import fake_quantize, per_channel_amax
from .histogram import RunningHistogram
from .learnable import make_scales_learnable
from .policy import (insert_attention_quantizers, insert_quantizers,
                     select_attention, select_quant_layers)
from .quant_layers import QuantConv2d, QuantLinear, quant_layers
from .tensor_quantizer import TensorQuantizer

__all__ = [
    'CALIBRATORS', 'SUPPORTED_ATTENTION', 'amax_from_histogram', 'calibrate',
    'enable_quant', 'fake_quantize', 'has_quant_gemms', 'quant_gemms',
    'insert_attention_quantizers',
    'insert_quantizers', 'make_scales_learnable', 'per_channel_amax',
    'quant_attention_layers', 'quant_layers', 'quantize_attention',
    'quantize_mha_gemms',
    'range_holders', 'select_attention', 'select_quant_layers',
    'uncalibrated', 'RunningHistogram',
    'QuantConv2d', 'QuantLinear', 'TensorQuantizer'
]

"""Pure-torch INT8 fake quantization (TensorRT explicit-quantization scheme):
placement policy, calibration and fake-quantized layers."""
from .attention import (SUPPORTED_ATTENTION, quant_attention_layers,
                        quantize_attention, quantize_mha_gemms)
from .attention_mha import has_quant_gemms
from .calibrate import (calibrate, disable_quant, enable_quant, quant_gemms,
                        range_holders, uncalibrated)
from .calibrators import (CALIBRATORS, Calibrator, amax_from_histogram,
                          build_calibrator)
from .fake_quant import fake_quantize, per_channel_amax
from .histogram import RunningHistogram
from .learnable import make_scales_learnable
from .policy import (insert_attention_quantizers, insert_quantizers,
                     select_attention, select_quant_layers)
from .quant_layers import (LEGACY_RANGE_KEYS, QuantConv2d, QuantLayerMixin,
                           QuantLinear, quant_layers, upgrade_range_keys)
from .tensor_quantizer import TensorQuantizer

__all__ = [
    'CALIBRATORS', 'LEGACY_RANGE_KEYS', 'SUPPORTED_ATTENTION', 'Calibrator',
    'QuantConv2d', 'QuantLayerMixin', 'QuantLinear', 'RunningHistogram',
    'TensorQuantizer', 'amax_from_histogram', 'build_calibrator',
    'calibrate', 'disable_quant', 'enable_quant', 'fake_quantize',
    'has_quant_gemms', 'insert_attention_quantizers', 'insert_quantizers',
    'make_scales_learnable', 'per_channel_amax', 'quant_attention_layers',
    'quant_gemms', 'quant_layers', 'quantize_attention',
    'quantize_mha_gemms', 'range_holders', 'select_attention',
    'select_quant_layers', 'uncalibrated', 'upgrade_range_keys'
]

"""Learnable quantization ranges (LSQ-style): the ranges become parameters
that the optimizer updates, with the gradient of
:func:`.fake_quant.fake_quantize`."""
from typing import List

from torch import nn

from .tensor_quantizer import TensorQuantizer


def make_scales_learnable(model: nn.Module) -> List[nn.Parameter]:
    """Turn the range of every quantizer of ``model`` into an
    ``nn.Parameter``.

    The state-dict keys do not change (a buffer and a parameter of the same
    name save alike), so checkpoints of frozen and learnable runs load into
    each other. Idempotent.

    Args:
        model (nn.Module): Model with quantizers inserted (and calibrated).

    Returns:
        list[nn.Parameter]: The range parameters, in module order.
    """
    params = []
    for quantizer in model.modules():
        if not isinstance(quantizer, TensorQuantizer):
            continue
        value = quantizer.amax
        if not isinstance(value, nn.Parameter):
            del quantizer._buffers['amax']
            value = nn.Parameter(value.detach().clone())
            quantizer.register_parameter('amax', value)
        params.append(value)
    return params

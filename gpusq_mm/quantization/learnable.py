"""Learnable quantization ranges (LSQ-style): the ranges become parameters
that the optimizer updates, with the gradient of
:func:`.fake_quant.fake_quantize`."""
from typing import List

from torch import nn

from .attention_mha import has_quant_gemms
from .calibrate import range_holders
from .tensor_quantizer import TensorQuantizer


def _range_names(holder: nn.Module) -> tuple:
    if isinstance(holder, TensorQuantizer):
        return ('amax', )
    if has_quant_gemms(holder):  # its inputs are TensorQuantizers
        return ('in_proj_weight_amax', )
    return ('input_amax', 'weight_amax')


def make_scales_learnable(model: nn.Module) -> List[nn.Parameter]:
    """Turn every quantization range of ``model`` into an ``nn.Parameter``.

    The state-dict keys do not change (a buffer and a parameter of the same
    name save alike), so checkpoints of frozen and learnable runs load into
    each other. Idempotent.

    Args:
        model (nn.Module): Model with quantizers inserted (and calibrated).

    Returns:
        list[nn.Parameter]: The range parameters, in module order.
    """
    params = []
    holders = list(range_holders(model).values()) + [
        m for m in model.modules() if has_quant_gemms(m)]
    for holder in holders:
        for name in _range_names(holder):
            value = getattr(holder, name)
            if not isinstance(value, nn.Parameter):
                del holder._buffers[name]
                value = nn.Parameter(value.detach().clone())
                holder.register_parameter(name, value)
            params.append(value)
    return params

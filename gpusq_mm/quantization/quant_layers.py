"""Fake-quantized Linear/Conv2d made by swapping the module's class in place.

The swap keeps every ``nn.Parameter`` object (so the optimizer and DDP see
the same parameters) and adds two persistent buffers, ``input_amax``
(per-tensor) and ``weight_amax`` (per output channel), which are saved in the
state dict. A layer is in one of three states: ``'off'`` (float),
``'calib'`` (float, recording the running max of |input| and, for the
histogram calibrators, a histogram of it) and ``'quant'``
(input and weight fake-quantized).
"""
from typing import Dict

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .calibrators import record_range
from .fake_quant import fake_quantize, per_channel_amax


class _QuantMixin:
    """Shared state of the fake-quantized layers."""

    def _init_quant(self, weight_bits: int = 8) -> None:
        device = self.weight.device
        self.register_buffer('input_amax', torch.zeros((), device=device))
        shape = (self.weight.shape[0], ) + (1, ) * (self.weight.dim() - 1)
        self.register_buffer('weight_amax', torch.zeros(shape, device=device))
        self.quant_state = 'off'
        self.weight_bits = weight_bits
        self.calib_hist = None
        self.calib_calls = 0

    def _quant_inputs(self, x: Tensor) -> Tensor:
        if self.quant_state == 'calib':
            self.calib_calls += 1
            record_range(self.input_amax, self.calib_hist, x)
            return x
        if self.quant_state == 'quant':
            return fake_quantize(x, self.input_amax)
        return x

    def _quant_weight(self) -> Tensor:
        if self.quant_state != 'quant':
            return self.weight
        return fake_quantize(self.weight, self.weight_amax, self.weight_bits)

    @torch.no_grad()
    def update_weight_amax(self) -> None:
        """Set the per-channel weight range from the current weights."""
        self.weight_amax.copy_(per_channel_amax(self.weight))


class QuantLinear(_QuantMixin, nn.Linear):
    """``nn.Linear`` with fake-quantized input and weight."""

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(self._quant_inputs(x), self._quant_weight(),
                        self.bias)


class QuantConv2d(_QuantMixin, nn.Conv2d):
    """``nn.Conv2d`` with fake-quantized input and weight."""

    def forward(self, x: Tensor) -> Tensor:
        return self._conv_forward(self._quant_inputs(x), self._quant_weight(),
                                  self.bias)


_SWAP = {nn.Linear: QuantLinear, nn.Conv2d: QuantConv2d}

# Subclasses whose forward is the base class's forward on torch >= 1.5
# (mmcv's empty-tensor wrappers; the output projection of
# nn.MultiheadAttention, which runs as a module once its attention is
# quantized, see .attention_mha), by qualified name so that this module does
# not import mmcv.
FORWARD_EQUIVALENT = {
    'mmcv.cnn.bricks.wrappers.Linear': nn.Linear,
    'mmcv.cnn.bricks.wrappers.Conv2d': nn.Conv2d,
    'torch.nn.modules.linear.NonDynamicallyQuantizableLinear': nn.Linear,
}
_dynamic_classes: Dict[type, type] = {}


def unsupported_reason(module: nn.Module) -> str:
    """Why ``module`` cannot be fake-quantized by a class swap ('' if it
    can)."""
    cls = type(module)
    if cls in _SWAP or isinstance(module, _QuantMixin):
        return ''
    if f'{cls.__module__}.{cls.__qualname__}' in FORWARD_EQUIVALENT:
        return ''
    return f'{cls.__name__} has its own forward'


def _quant_class(cls: type) -> type:
    if cls in _SWAP:
        return _SWAP[cls]
    if cls not in _dynamic_classes:
        base = FORWARD_EQUIVALENT[f'{cls.__module__}.{cls.__qualname__}']
        _dynamic_classes[cls] = type(f'Quant{cls.__name__}',
                                     (_SWAP[base], cls), {})
    return _dynamic_classes[cls]


def quantize_module(module: nn.Module, weight_bits: int = 8) -> nn.Module:
    """Turn a Linear/Conv2d into its fake-quantized class, in place.

    Args:
        module (nn.Module): An ``nn.Linear``/``nn.Conv2d`` or a subclass
            whose forward is the base one (see ``FORWARD_EQUIVALENT``).
        weight_bits (int): Weight bit width. Defaults to 8.

    Returns:
        nn.Module: The same object, now also a :class:`QuantLinear` or
        :class:`QuantConv2d` (``isinstance`` of its old class still holds).
    """
    if isinstance(module, _QuantMixin):
        return module
    reason = unsupported_reason(module)
    if reason:
        raise TypeError(f'cannot quantize {type(module).__name__}: {reason}')
    module.__class__ = _quant_class(type(module))
    module._init_quant(weight_bits)
    return module


def quant_layers(model: nn.Module) -> Dict[str, _QuantMixin]:
    """Return ``{name: layer}`` of the fake-quantized layers of ``model``."""
    return {n: m for n, m in model.named_modules()
            if isinstance(m, _QuantMixin)}

"""Fake-quantized Linear/Conv2d made by swapping the module's class in place.

The swap keeps every ``nn.Parameter`` object (so the optimizer and DDP see
the same parameters) and adds two :class:`~.tensor_quantizer.TensorQuantizer`
children: ``input_quantizer`` (one range per tensor) and
``weight_quantizer`` (one range per output channel), whose ranges are saved
in the state dict (``<layer>.input_quantizer.amax``,
``<layer>.weight_quantizer.amax``). The layer's switches act on both:
:meth:`QuantLayerMixin.enable_calibration` (record the input range),
:meth:`~QuantLayerMixin.load_calib_amax` (set the input range, the weight
range from the weights), :meth:`~QuantLayerMixin.enable_quant` and
:meth:`~QuantLayerMixin.disable`.

Checkpoints written before the quantizers were modules hold the ranges as
``<layer>.input_amax`` / ``<layer>.weight_amax``; they load unchanged
(:data:`LEGACY_RANGE_KEYS`, applied by every quantized module's state-dict
loading).
"""
from typing import Dict, Mapping, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .fake_quant import per_channel_amax
from .tensor_quantizer import TensorQuantizer

#: Old state-dict names of the ranges (before ``format`` 2) -> new ones.
LEGACY_RANGE_KEYS = {
    'input_amax': 'input_quantizer.amax',
    'weight_amax': 'weight_quantizer.amax',
    'in_proj_weight_amax': 'in_proj_weight_quantizer.amax',
}


def _upgraded(key: str) -> str:
    """``key`` with an old range name replaced by the quantizer's."""
    owner, dot, leaf = key.rpartition('.')
    if leaf not in LEGACY_RANGE_KEYS:
        return key
    return owner + dot + LEGACY_RANGE_KEYS[leaf]


def upgrade_range_keys(state_dict: Mapping[str, Tensor]) -> Dict[str, Tensor]:
    """Rename the old range keys of every module to the quantizer keys;
    other keys are kept.

    Args:
        state_dict (Mapping): A state dict.

    Returns:
        dict: A new dict, in the same order.
    """
    return {_upgraded(k): v for k, v in state_dict.items()}


class LegacyRangeKeysMixin:
    """Loads state dicts that hold the old range keys (see
    :data:`LEGACY_RANGE_KEYS`)."""

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # this module's own old keys only; the children rename theirs
        old = [k for k in state_dict if k.startswith(prefix)
               and k[len(prefix):] in LEGACY_RANGE_KEYS]
        for key in old:
            state_dict[_upgraded(key)] = state_dict.pop(key)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


class QuantLayerMixin(LegacyRangeKeysMixin):
    """A Linear/Conv2d with an input and a weight quantizer."""

    input_quantizer: TensorQuantizer
    weight_quantizer: TensorQuantizer

    def _init_quant(self, weight_bits: int = 8) -> None:
        device = self.weight.device
        self.input_quantizer = TensorQuantizer(8).to(device)
        self.weight_quantizer = TensorQuantizer(
            weight_bits, channels=self.weight.shape[0],
            channel_dims=self.weight.dim()).to(device)

    @property
    def weight_bits(self) -> int:
        """Bit width of the weights."""
        return self.weight_quantizer.num_bits

    @property
    def quant_state(self) -> str:
        """The state of the input quantizer (the layer's state)."""
        return self.input_quantizer.quant_state

    def enable_calibration(self, bins: Optional[int] = None) -> None:
        """Record the input range (see
        :meth:`TensorQuantizer.enable_calibration`); weights stay float."""
        self.input_quantizer.enable_calibration(bins)
        self.weight_quantizer.disable()

    @torch.no_grad()
    def load_calib_amax(self, amax: Optional[Tensor] = None) -> None:
        """Set the input range (None: the recorded max) and the weight
        ranges from the current weights."""
        self.input_quantizer.load_calib_amax(amax)
        self.calibrate_weight()

    @torch.no_grad()
    def calibrate_weight(self) -> None:
        """Set the per-channel weight ranges from the current weights."""
        self.weight_quantizer.load_calib_amax(per_channel_amax(self.weight))

    def enable_quant(self) -> bool:
        """Fake-quantize input and weight if the input range is set (a
        layer calibration never reached stays in float).

        Returns:
            bool: Whether the layer is quantized.
        """
        if self.input_quantizer.enable_quant():
            self.weight_quantizer.enable_quant()
            return True
        self.weight_quantizer.disable()
        return False

    def disable(self) -> None:
        """Run in float."""
        self.input_quantizer.disable()
        self.weight_quantizer.disable()

    def quant_weight(self) -> Tensor:
        """The weight as the layer uses it (fake-quantized when on)."""
        return self.weight_quantizer(self.weight)


class QuantLinear(QuantLayerMixin, nn.Linear):
    """``nn.Linear`` with fake-quantized input and weight."""

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(self.input_quantizer(x), self.quant_weight(),
                        self.bias)


class QuantConv2d(QuantLayerMixin, nn.Conv2d):
    """``nn.Conv2d`` with fake-quantized input and weight."""

    def forward(self, x: Tensor) -> Tensor:
        return self._conv_forward(self.input_quantizer(x),
                                  self.quant_weight(), self.bias)


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
    if cls in _SWAP or isinstance(module, QuantLayerMixin):
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
    if isinstance(module, QuantLayerMixin):
        return module
    reason = unsupported_reason(module)
    if reason:
        raise TypeError(f'cannot quantize {type(module).__name__}: {reason}')
    module.__class__ = _quant_class(type(module))
    module._init_quant(weight_bits)
    return module


def quant_layers(model: nn.Module) -> Dict[str, QuantLayerMixin]:
    """Return ``{name: layer}`` of the fake-quantized layers of ``model``."""
    return {n: m for n, m in model.named_modules()
            if isinstance(m, QuantLayerMixin)}

"""Blocks that apply a child Linear's weight with ``F.linear`` themselves.

Some transformer blocks build their qkv bias on the fly and call
``F.linear(x, weight=self.qkv.weight, bias=qkv_bias)`` instead of
``self.qkv(x)``, so the fake-quantized forward of ``self.qkv`` never runs.
For the block classes listed in ``FUNCTIONAL_LINEAR_BLOCKS`` the block's
class is swapped (parameters and state-dict keys unchanged) for a subclass
whose forward runs the original one under a
:class:`torch.overrides.TorchFunctionMode` that sees those ``F.linear``
calls: when the weight is that of a fake-quantized child, both the input and
the weight are fake-quantized with the child's ranges (the child records
its input range in calibration), which makes it an int8 GEMM. Calls inside
the children's own forward are left alone.

Layers bypassed by blocks that are not listed stay in float: calibration
never sees them and reports them (:func:`.calibrate.uncalibrated`).
"""
from typing import Dict

import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from .child_calls import children_marked
from .quant_layers import QuantLayerMixin

# qualified class names of the blocks known to call F.linear on the weight
# of a child nn.Linear
FUNCTIONAL_LINEAR_BLOCKS = [
    'mmpretrain.models.utils.attention.BEiTAttention',
    'mmpretrain.models.utils.attention.WindowMSAV2',
    'mmpretrain.models.utils.attention.CrossMultiheadAttention',
    'mmseg.models.backbones.beit.BEiTAttention',
]


def _qualname(cls: type) -> str:
    return f'{cls.__module__}.{cls.__qualname__}'


class _FunctionalLinearMode(TorchFunctionMode):
    """Fake-quantizes ``F.linear`` calls on the weight of a quantized
    child, outside the children's own forward."""

    def __init__(self, layers: Dict[int, QuantLayerMixin]) -> None:
        super().__init__()
        self.layers = layers
        self.depth = 0

    def enter_child(self, *_) -> None:
        self.depth += 1

    def exit_child(self, *_) -> None:
        self.depth -= 1

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        if func is not F.linear or self.depth:
            return func(*args, **kwargs)
        names = ('input', 'weight', 'bias')
        call = dict(zip(names, args), **kwargs)
        layer = self.layers.get(id(call.get('weight')))
        if layer is None:
            return func(*args, **kwargs)
        return func(layer.input_quantizer(call['input']),
                    layer.quant_weight(), call.get('bias'))


class FunctionalLinearMixin:
    """Runs the block's forward with its functional GEMMs fake-quantized."""

    def forward(self, *args, **kwargs):
        layers = {id(m.weight): m for m in self.children()
                  if isinstance(m, QuantLayerMixin)}
        mode = _FunctionalLinearMode(layers)
        with children_marked(self, mode), mode:
            return super().forward(*args, **kwargs)


_dynamic_classes: Dict[type, type] = {}


def is_functional_linear_block(module: nn.Module) -> bool:
    """Whether ``module``'s class is listed in ``FUNCTIONAL_LINEAR_BLOCKS``
    (or already adapted)."""
    return isinstance(module, FunctionalLinearMixin) or \
        _qualname(type(module)) in FUNCTIONAL_LINEAR_BLOCKS


def adapt_functional_blocks(model: nn.Module) -> Dict[str, nn.Module]:
    """Swap the class of every listed block that holds a fake-quantized
    child, in place.

    Returns:
        dict: ``{name: block}`` of the adapted blocks.
    """
    adapted = {}
    for name, module in model.named_modules():
        if not is_functional_linear_block(module) or not any(
                isinstance(c, QuantLayerMixin) for c in module.children()):
            continue
        cls = type(module)
        if not isinstance(module, FunctionalLinearMixin):
            if cls not in _dynamic_classes:
                _dynamic_classes[cls] = type(f'QuantF{cls.__name__}',
                                             (FunctionalLinearMixin, cls), {})
            module.__class__ = _dynamic_classes[cls]
        adapted[name] = module
    return adapted

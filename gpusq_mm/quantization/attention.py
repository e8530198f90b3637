"""Fake quantization of the two attention matmuls (q·kᵀ and attn·v).

TensorRT runs a transformer's attention as two int8 batched GEMMs when Q/DQ
sits on both operands of each: ``q`` and ``k`` before ``q @ k.T``, the
softmax output ``p`` and ``v`` before ``p @ v``. The softmax itself stays in
high precision.

Attention modules compute these products inline (``q @ k.transpose(-2,
-1)`` in Swin's ``WindowMSA``, ``F.scaled_dot_product_attention`` in
mmpretrain's ``MultiheadAttention``), so there is no submodule to wrap.
Instead the module's class is swapped (as for Linear layers, parameters
untouched) for a subclass whose forward runs the original forward under a
:class:`torch.overrides.TorchFunctionMode` that sees those calls: the first
product of a forward is ``q·kᵀ``, the second ``p·v``, and a fused
``scaled_dot_product_attention`` is computed explicitly with all four
operands quantized. ``nn.MultiheadAttention`` (used by mmcv, mmdet's DETR
family and SegFormer) runs its whole forward inside one functional call
that such a mode cannot look into, so its subclass computes the attention
explicitly (:mod:`.attention_mha`); the result equals the original forward
up to float rounding when the quantizers are off. The four quantizers live in a
``matmul_quantizers`` ``ModuleDict`` of the attention module (state-dict
keys ``<module>.matmul_quantizers.{q,k,p,v}.amax``).
"""
import math
from typing import Dict, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

from .attention_mha import (QuantMHAMixin, add_in_proj_quantizers,
                            check_mha_supported, mha_gemm_reason)
from .tensor_quantizer import TensorQuantizer, all_off

# Attention classes (qualified names) whose forward computes q·kᵀ then p·v
# with the functions below and no other matmul.
SUPPORTED_ATTENTION = (
    'torch.nn.modules.activation.MultiheadAttention',
    'mmdet.models.backbones.swin.WindowMSA',
    'mmseg.models.backbones.swin.WindowMSA',
    'mmpretrain.models.utils.attention.WindowMSA',
    'mmpretrain.models.utils.attention.MultiheadAttention',
)
_PRODUCTS = (torch.matmul, Tensor.matmul, Tensor.__matmul__, torch.bmm,
             Tensor.bmm)
OPERANDS = ('q', 'k', 'p', 'v')


def _qualname(cls: type) -> str:
    return f'{cls.__module__}.{cls.__qualname__}'


def is_supported_attention(module: nn.Module) -> bool:
    """Whether ``module``'s attention matmuls can be fake-quantized."""
    return isinstance(module, (QuantAttentionMixin, QuantMHAMixin)) or \
        _qualname(type(module)) in SUPPORTED_ATTENTION


def is_quantized_attention(module: nn.Module) -> bool:
    """Whether ``module`` is an attention module with quantized matmuls."""
    return isinstance(module, (QuantAttentionMixin, QuantMHAMixin)) and \
        'matmul_quantizers' in module._modules


class _MatmulQuantMode(TorchFunctionMode):
    """Fake-quantizes the operands of the attention products of one
    forward call."""

    def __init__(self, quantizers: nn.ModuleDict) -> None:
        super().__init__()
        self.quantizers = quantizers
        self.calls = 0
        self.depth = 0  # > 0 inside a child module (e.g. the qkv Linear)

    def enter_child(self, *_) -> None:
        self.depth += 1

    def exit_child(self, *_) -> None:
        self.depth -= 1

    def _product(self, a: Tensor, b: Tensor, transposed_b: bool):
        first = self.calls == 0
        self.calls += 1
        if self.calls > 2:
            raise RuntimeError(
                'attention quantization expected two matmuls per forward '
                '(q·kᵀ, then attn·v) but saw a third; this attention '
                'module is not supported, exclude it (quant_attention '
                'exclude patterns)')
        qa, qb = ('q', 'k') if first else ('p', 'v')
        return self.quantizers[qa](a), self.quantizers[qb](b)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if self.depth:
            return func(*args, **kwargs)
        if func in _PRODUCTS:
            a, b = self._product(args[0], args[1], False)
            return func(a, b, *args[2:], **kwargs)
        if func is torch.baddbmm:
            a, b = self._product(args[1], args[2], False)
            return func(args[0], a, b, *args[3:], **kwargs)
        if func is F.scaled_dot_product_attention:
            return self._sdpa(*args, **kwargs)
        return func(*args, **kwargs)

    def _sdpa(self, query: Tensor, key: Tensor, value: Tensor,
              attn_mask: Optional[Tensor] = None, dropout_p: float = 0.0,
              is_causal: bool = False, scale: Optional[float] = None,
              enable_gqa: bool = False) -> Tensor:
        """``F.scaled_dot_product_attention`` written out so that its two
        products are quantized (grouped-query attention is not)."""
        if enable_gqa:
            raise RuntimeError('attention quantization does not support '
                               'enable_gqa=True')
        scale = 1.0 / math.sqrt(query.shape[-1]) if scale is None else scale
        q, k = self._product(query * scale, key, True)
        scores = q @ k.transpose(-2, -1)
        length, source = query.shape[-2], key.shape[-2]
        if is_causal:
            keep = torch.ones(length, source, dtype=torch.bool,
                              device=query.device).tril()
            scores = scores.masked_fill(~keep, float('-inf'))
        if attn_mask is not None:
            if attn_mask.dtype == torch.bool:
                scores = scores.masked_fill(~attn_mask, float('-inf'))
            else:
                scores = scores + attn_mask
        probs = scores.softmax(dim=-1)
        if dropout_p > 0.0:
            probs = F.dropout(probs, dropout_p)
        p, v = self._product(probs, value, False)
        return p @ v


class QuantAttentionMixin:
    """Runs the original forward with its matmul operands fake-quantized."""

    def forward(self, *args, **kwargs):
        if all_off(self.matmul_quantizers.values()):
            return super().forward(*args, **kwargs)
        mode = _MatmulQuantMode(self.matmul_quantizers)
        # products computed inside child modules (an exported Linear is a
        # MatMul) are not the attention's
        handles = []
        for name, child in self.named_children():
            if name != 'matmul_quantizers':
                handles.append(child.register_forward_pre_hook(
                    mode.enter_child))
                handles.append(child.register_forward_hook(mode.exit_child))
        try:
            with mode:
                return super().forward(*args, **kwargs)
        finally:
            for handle in handles:
                handle.remove()


_dynamic_classes: Dict[type, type] = {}


def _swap_class(module: nn.Module) -> None:
    """Swap ``module``'s class for its quantized subclass (once)."""
    if isinstance(module, (QuantAttentionMixin, QuantMHAMixin)):
        return
    cls = type(module)
    if cls not in _dynamic_classes:
        mixin = QuantMHAMixin if issubclass(cls, nn.MultiheadAttention) \
            else QuantAttentionMixin
        _dynamic_classes[cls] = type(f'Quant{cls.__name__}', (mixin, cls),
                                     {})
    module.__class__ = _dynamic_classes[cls]


def quantize_attention(module: nn.Module) -> nn.Module:
    """Give an attention module fake-quantized matmuls, in place.

    Args:
        module (nn.Module): An instance of one of ``SUPPORTED_ATTENTION``.

    Returns:
        nn.Module: The same object, its class swapped for a subclass with
        the same parameters and a ``matmul_quantizers`` ``ModuleDict``.
    """
    if is_quantized_attention(module):
        return module
    if not is_supported_attention(module):
        raise TypeError(
            f'cannot quantize the matmuls of {type(module).__name__}; '
            f'supported attention classes: {", ".join(SUPPORTED_ATTENTION)}')
    if isinstance(module, nn.MultiheadAttention):
        check_mha_supported(module)
    device = next(module.parameters()).device
    _swap_class(module)
    module.matmul_quantizers = nn.ModuleDict(
        {name: TensorQuantizer().to(device) for name in OPERANDS})
    return module


def quantize_mha_gemms(module: nn.MultiheadAttention,
                       weight_bits: int = 8) -> nn.MultiheadAttention:
    """Fake-quantize the input projections of an ``nn.MultiheadAttention``
    in place (see :mod:`.attention_mha`); its ``out_proj`` is quantized as
    an ordinary Linear and runs because the swapped forward calls it.

    Args:
        module (nn.MultiheadAttention): The attention module.
        weight_bits (int): Weight bit width. Defaults to 8.

    Returns:
        nn.MultiheadAttention: The same object.
    """
    reason = mha_gemm_reason(module)
    if reason:
        raise TypeError(f'cannot quantize the input projections of {reason}')
    _swap_class(module)
    add_in_proj_quantizers(module, weight_bits)
    return module


def quant_attention_layers(model: nn.Module) -> Dict[str, nn.Module]:
    """``{name: module}`` of the attention modules with quantized
    matmuls."""
    return {n: m for n, m in model.named_modules()
            if is_quantized_attention(m)}

"""``nn.MultiheadAttention`` with fake-quantized GEMMs and attention matmuls.

``nn.MultiheadAttention.forward`` hands all its work to one functional call
that reads ``in_proj_weight`` and ``out_proj.weight`` directly, so neither a
swapped ``out_proj`` nor a :class:`torch.overrides.TorchFunctionMode` sees
its products. The quantized subclass computes the same attention explicitly
(the ``need_weights`` path of ``F.multi_head_attention_forward``) and
quantizes, each where the policy asked for it:

- the three input projections (:func:`quantize_mha_gemms`): a per-tensor
  input quantizer each (``in_proj_quantizers.{q,k,v}``, since query, key and
  value are different tensors in cross-attention) and a per-output-channel
  weight quantizer (``in_proj_weight_quantizer``, one range per row of
  ``in_proj_weight``), the policy of every other GEMM;
- the output projection, called as a module so that a fake-quantized
  ``out_proj`` (a :class:`~.quant_layers.QuantLinear`) runs;
- the two attention products (:func:`~.attention.quantize_attention`),
  ``matmul_quantizers.{q,k,p,v}``.

While every quantizer is off the stock forward runs. Options that
mmcv/mmdet/mmseg never use (``bias_k``/``bias_v``, ``add_zero_attn``,
``is_causal``, ``kdim``/``vdim`` != ``embed_dim`` for the GEMMs) are refused
when the module is quantized.
"""
from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .fake_quant import per_channel_amax
from .quant_layers import LegacyRangeKeysMixin
from .tensor_quantizer import TensorQuantizer, all_off

IN_PROJ = ('q', 'k', 'v')


def check_mha_supported(module: nn.MultiheadAttention) -> None:
    """Raise ``TypeError`` for the options the explicit forward lacks."""
    if module.bias_k is not None or module.add_zero_attn:
        raise TypeError('cannot quantize an nn.MultiheadAttention with '
                        'add_bias_kv or add_zero_attn; exclude it '
                        '(QATHook exclude / quant_attention exclude)')


def mha_gemm_reason(module: nn.MultiheadAttention) -> str:
    """Why the input projections of ``module`` cannot be fake-quantized
    ('' if they can)."""
    if type(module) is not nn.MultiheadAttention and \
            not isinstance(module, QuantMHAMixin):
        return (f'{type(module).__name__} overrides nn.MultiheadAttention '
                '(its own forward)')
    if module.bias_k is not None or module.add_zero_attn:
        return 'nn.MultiheadAttention with add_bias_kv or add_zero_attn'
    if not module._qkv_same_embed_dim:
        return 'nn.MultiheadAttention with kdim/vdim != embed_dim'
    return ''


def _additive(mask: Optional[Tensor], dtype: torch.dtype) -> Optional[Tensor]:
    if mask is None or mask.dtype != torch.bool:
        return None if mask is None else mask.to(dtype)
    return torch.zeros_like(mask, dtype=dtype).masked_fill(mask, float('-inf'))


def _identity(x: Tensor) -> Tensor:
    return x


class QuantMHAMixin(LegacyRangeKeysMixin):
    """Explicit multi-head attention whose GEMMs and products can be
    fake-quantized (see the module docstring)."""

    @property
    def weight_quantizer(self) -> TensorQuantizer:
        """The per-output-channel quantizer of ``in_proj_weight`` (the
        name every fake-quantized GEMM gives its weight quantizer)."""
        return self.in_proj_weight_quantizer

    @property
    def weight_bits(self) -> int:
        """Bit width of the input-projection weights."""
        return self.in_proj_weight_quantizer.num_bits

    @torch.no_grad()
    def calibrate_weight(self) -> None:
        """Set the per-channel range of ``in_proj_weight`` from the
        current weights (the input ranges are their quantizers')."""
        self.in_proj_weight_quantizer.load_calib_amax(
            per_channel_amax(self.in_proj_weight))

    def enable_quant(self) -> bool:
        """Switch the calibrated input projections to fake quantization
        (the weight rows of a projection whose input quantizer stays off
        stay in float).

        Returns:
            bool: Whether any projection is quantized.
        """
        on = [q.enable_quant() for q in self.in_proj_quantizers.values()]
        if any(on):
            self.in_proj_weight_quantizer.enable_quant()
        else:
            self.in_proj_weight_quantizer.disable()
        return any(on)

    def _all_off(self) -> bool:
        """Whether no quantizer of this module (or its ``out_proj``) is
        calibrating or quantizing."""
        if getattr(self.out_proj, 'quant_state', 'off') != 'off':
            return False
        return all(all_off(self._modules[key].values())
                   for key in ('in_proj_quantizers', 'matmul_quantizers')
                   if key in self._modules)

    def _in_projections(self, query: Tensor, key: Tensor,
                        value: Tensor) -> List[Tensor]:
        if self._qkv_same_embed_dim:
            weights = list(self.in_proj_weight.chunk(3))
        else:
            weights = [self.q_proj_weight, self.k_proj_weight,
                       self.v_proj_weight]
        biases = (self.in_proj_bias.chunk(3) if self.in_proj_bias is not None
                  else (None, None, None))
        inputs = [query, key, value]
        quantizers = self._modules.get('in_proj_quantizers')
        if quantizers is not None:
            quantized = self.in_proj_weight_quantizer(
                self.in_proj_weight).chunk(3)
            for i, name in enumerate(IN_PROJ):
                quantizer = quantizers[name]
                inputs[i] = quantizer(inputs[i])
                if quantizer.quant_state == 'quant':
                    weights[i] = quantized[i]
        return [F.linear(x, w, b) for x, w, b in zip(inputs, weights, biases)]

    def forward(self, query: Tensor, key: Tensor, value: Tensor,
                key_padding_mask: Optional[Tensor] = None,
                need_weights: bool = True,
                attn_mask: Optional[Tensor] = None,
                average_attn_weights: bool = True,
                is_causal: bool = False
                ) -> Tuple[Tensor, Optional[Tensor]]:
        if self._all_off():
            return super().forward(query, key, value, key_padding_mask,
                                   need_weights, attn_mask,
                                   average_attn_weights, is_causal)
        if is_causal:
            raise ValueError('quantized nn.MultiheadAttention does not '
                             'support is_causal; pass an attn_mask')
        batched = query.dim() == 3
        if not batched:
            query, key, value = (x.unsqueeze(1) for x in (query, key, value))
            if key_padding_mask is not None:
                key_padding_mask = key_padding_mask.unsqueeze(0)
        elif self.batch_first:
            query, key, value = (x.transpose(0, 1)
                                 for x in (query, key, value))
        length, batch, embed = query.shape
        source, heads = key.shape[0], self.num_heads
        q, k, v = self._in_projections(query, key, value)
        q = q.reshape(length, batch * heads, -1).transpose(0, 1)
        k = k.reshape(source, batch * heads, -1).transpose(0, 1)
        v = v.reshape(source, batch * heads, -1).transpose(0, 1)
        mask = _additive(attn_mask, q.dtype)
        padding = _additive(key_padding_mask, q.dtype)
        if padding is not None:
            padding = padding.view(batch, 1, 1, source).expand(
                -1, heads, -1, -1).reshape(batch * heads, 1, source)
            mask = padding if mask is None else mask + padding
        mm = self._modules.get('matmul_quantizers')
        quant = (lambda op: mm[op]) if mm is not None else \
            (lambda op: _identity)
        q = quant('q')(q * (q.shape[-1]**-0.5))
        scores = q @ quant('k')(k).transpose(-2, -1)
        if mask is not None:
            scores = scores + mask
        probs = scores.softmax(dim=-1)
        if self.training and self.dropout > 0.0:
            probs = F.dropout(probs, p=self.dropout)
        out = quant('p')(probs) @ quant('v')(v)
        out = out.transpose(0, 1).reshape(length * batch, embed)
        out = self.out_proj(out).view(length, batch, embed)
        weights = None
        if need_weights:
            weights = probs.view(batch, heads, length, source)
            if average_attn_weights:
                weights = weights.mean(dim=1)
            if not batched:
                weights = weights.squeeze(0)
        if not batched:
            out = out.squeeze(1)
        elif self.batch_first:
            out = out.transpose(0, 1)
        return out, weights


def add_in_proj_quantizers(module: nn.MultiheadAttention,
                           weight_bits: int) -> None:
    """Give a :class:`QuantMHAMixin` module its input-projection
    quantizers and weight quantizer (no-op if it has them; the caller,
    :func:`~.attention.quantize_mha_gemms`, checks :func:`mha_gemm_reason`
    first)."""
    if 'in_proj_quantizers' in module._modules:
        return
    device = module.in_proj_weight.device
    module.in_proj_quantizers = nn.ModuleDict(
        {name: TensorQuantizer().to(device) for name in IN_PROJ})
    module.in_proj_weight_quantizer = TensorQuantizer(
        weight_bits, channels=module.in_proj_weight.shape[0]).to(device)


def has_quant_gemms(module: nn.Module) -> bool:
    """Whether ``module`` is an ``nn.MultiheadAttention`` whose input
    projections are fake-quantized."""
    return isinstance(module, QuantMHAMixin) and \
        'in_proj_quantizers' in module._modules

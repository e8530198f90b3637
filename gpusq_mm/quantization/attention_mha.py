"""``nn.MultiheadAttention`` with fake-quantized attention matmuls.

``nn.MultiheadAttention.forward`` hands all its work to one functional call,
so the quantized subclass computes the same attention explicitly (the
``need_weights`` path of ``F.multi_head_attention_forward``), with the
quantizers of :mod:`.attention` on ``q``, ``k``, the softmax output and
``v``. Options that mmcv/mmdet/mmseg never use (``bias_k``/``bias_v``,
``add_zero_attn``, ``is_causal``) are refused when the module is quantized.
"""
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def check_mha_supported(module: nn.MultiheadAttention) -> None:
    """Raise ``TypeError`` for the options the explicit forward lacks."""
    if module.bias_k is not None or module.add_zero_attn:
        raise TypeError('cannot quantize the matmuls of an '
                        'nn.MultiheadAttention with add_bias_kv or '
                        'add_zero_attn; exclude it from quant_attention')


def _additive(mask: Optional[Tensor], dtype: torch.dtype) -> Optional[Tensor]:
    if mask is None or mask.dtype != torch.bool:
        return None if mask is None else mask.to(dtype)
    return torch.zeros_like(mask, dtype=dtype).masked_fill(mask, float('-inf'))


class QuantMHAMixin:
    """Explicit multi-head attention whose two products are quantized."""

    def _in_projections(self, query: Tensor, key: Tensor, value: Tensor):
        if self._qkv_same_embed_dim:
            weights = self.in_proj_weight.chunk(3)
        else:
            weights = (self.q_proj_weight, self.k_proj_weight,
                       self.v_proj_weight)
        biases = (self.in_proj_bias.chunk(3) if self.in_proj_bias is not None
                  else (None, None, None))
        return [F.linear(x, w, b) for x, w, b in
                zip((query, key, value), weights, biases)]

    def forward(self, query: Tensor, key: Tensor, value: Tensor,
                key_padding_mask: Optional[Tensor] = None,
                need_weights: bool = True,
                attn_mask: Optional[Tensor] = None,
                average_attn_weights: bool = True,
                is_causal: bool = False
                ) -> Tuple[Tensor, Optional[Tensor]]:
        from .attention import all_off
        quantizers = self.matmul_quantizers
        if all_off(quantizers):
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
        q = quantizers['q'](q * (q.shape[-1]**-0.5))
        scores = q @ quantizers['k'](k).transpose(-2, -1)
        if mask is not None:
            scores = scores + mask
        probs = scores.softmax(dim=-1)
        if self.training and self.dropout > 0.0:
            probs = F.dropout(probs, p=self.dropout)
        out = quantizers['p'](probs) @ quantizers['v'](v)
        out = out.transpose(0, 1).reshape(length * batch, embed)
        out = F.linear(out, self.out_proj.weight, self.out_proj.bias)
        out = out.view(length, batch, embed)
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

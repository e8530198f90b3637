"""``nn.MultiheadAttention`` rebuilt from export Linears.

PyTorch's module keeps the q/k/v projections in one ``in_proj_weight``
parameter, which the ONNX exporter slices and transposes into anonymous
constants. Splitting it into three :class:`ExportLinear` layers (row
slices keep the 2:4 groups, which run along the input channels) gives every
projection a named weight initializer the verify step can check, and the
same graph shape as the other attention modules. Where QAT quantized the
projections (:func:`gpusq_mm.quantization.quantize_mha_gemms`), each
becomes an int8 Q/DQ GEMM with its own input range and the rows of
``in_proj_weight_quantizer``'s range as per-channel weight ranges.
"""
import math
from typing import Dict, Optional, Tuple

import torch
from torch import Tensor, nn

from gpusq_mm.quantization.attention_mha import IN_PROJ
from gpusq_mm.quantization.quant_layers import quantize_module

from .layers import ExportLinear

PROJECTIONS = ('q_proj', 'k_proj', 'v_proj')


def check_exportable(mha: nn.MultiheadAttention) -> None:
    """Raise ``TypeError`` for the variants this module does not cover."""
    if not mha._qkv_same_embed_dim or mha.bias_k is not None or \
            mha.add_zero_attn:
        raise TypeError('cannot export nn.MultiheadAttention with kdim/vdim '
                        '!= embed_dim, add_bias_kv or add_zero_attn; only '
                        'the standard projection layout is supported')


def projection_bits(mha: nn.MultiheadAttention) -> Dict[str, Optional[int]]:
    """``{projection: weight bits}`` (None: float) of ``mha``'s input
    projections as QAT left them."""
    quantizers = mha._modules.get('in_proj_quantizers')
    return {name: mha.weight_bits if quantizers is not None and
            quantizers[op].quant_state == 'quant' else None
            for name, op in zip(PROJECTIONS, IN_PROJ)}


def _projection(weight: Tensor, bias: Optional[Tensor],
                bits: Optional[int], mha: nn.MultiheadAttention, index: int,
                op: str) -> ExportLinear:
    dim = weight.shape[1]
    linear = nn.Linear(dim, weight.shape[0], bias=bias is not None)
    linear.weight.data.copy_(weight)
    if bias is not None:
        linear.bias.data.copy_(bias)
    if bits is not None:  # the projection as a quantized layer
        quantize_module(linear, bits)
        linear.input_quantizer.load_calib_amax(
            mha.in_proj_quantizers[op].amax.detach())
        linear.weight_quantizer.load_calib_amax(
            mha.in_proj_weight_quantizer.amax.detach().chunk(3)[index])
    return ExportLinear(linear, bits)


class ExportMultiheadAttention(nn.Module):
    """Eval-mode ``nn.MultiheadAttention`` with separate projections.

    Args:
        mha (nn.MultiheadAttention): The module to replace.
        out_proj (nn.Module): The exported output projection.
    """

    def __init__(self, mha: nn.MultiheadAttention,
                 out_proj: nn.Module) -> None:
        super().__init__()
        check_exportable(mha)
        dim = mha.embed_dim
        weights = mha.in_proj_weight.detach().split(dim)
        biases = [None] * 3 if mha.in_proj_bias is None else \
            mha.in_proj_bias.detach().split(dim)
        bits = projection_bits(mha)
        for i, (name, weight, bias) in enumerate(
                zip(PROJECTIONS, weights, biases)):
            setattr(self, name, _projection(weight, bias, bits[name], mha, i,
                                            IN_PROJ[i]))
        self.out_proj = out_proj
        # attention-matmul quantizers (QATHook quant_attention=True); the
        # deploy step turns them into Q/DQ after this module is built
        self.matmul_quantizers = getattr(mha, 'matmul_quantizers', None)
        self.num_heads = mha.num_heads
        self.batch_first = mha.batch_first
        self.scale = 1.0 / math.sqrt(dim // mha.num_heads)

    def _heads(self, x: Tensor) -> Tensor:
        b = x.shape[0]
        return x.reshape(b, -1, self.num_heads,
                         x.shape[-1] // self.num_heads).transpose(1, 2)

    def forward(self, query: Tensor, key: Tensor, value: Tensor,
                key_padding_mask: Optional[Tensor] = None,
                need_weights: bool = True,
                attn_mask: Optional[Tensor] = None,
                **kwargs) -> Tuple[Tensor, None]:
        if key_padding_mask is not None or attn_mask is not None:
            raise TypeError('attention masks are not supported in export')
        if not self.batch_first:
            query, key, value = (t.transpose(0, 1)
                                 for t in (query, key, value))
        q = self._heads(self.q_proj(query))
        k = self._heads(self.k_proj(key))
        v = self._heads(self.v_proj(value))
        quantizers = self.matmul_quantizers
        if quantizers is None:
            attn = torch.softmax(torch.matmul(q, k.transpose(-2, -1)) *
                                 self.scale, dim=-1)
        else:  # as in training: q scaled, then Q/DQ on all four operands
            q, k = quantizers['q'](q * self.scale), quantizers['k'](k)
            attn = torch.softmax(torch.matmul(q, k.transpose(-2, -1)),
                                 dim=-1)
            attn, v = quantizers['p'](attn), quantizers['v'](v)
        out = torch.matmul(attn, v).transpose(1, 2)
        out = self.out_proj(out.reshape(out.shape[0], out.shape[1], -1))
        return (out if self.batch_first else out.transpose(0, 1)), None

"""Where Q/DQ goes: the placement policy for transformer models.

Following TensorRT's explicit-quantization rules, the inputs and weights of
every plain ``nn.Linear``/``nn.Conv2d`` and of the input and output
projections of ``nn.MultiheadAttention`` are quantized (int8 GEMM/conv);
LayerNorm, Softmax and GELU stay in high precision (they are not wrapped);
residual adds are left to TensorRT's fusion of the Q/DQ around the GEMMs.
Optionally (:func:`select_attention`) the two attention matmuls get Q/DQ on
both operands: ``q`` and ``k`` before ``q·kᵀ``, the softmax output and ``v``
before ``attn·v`` (see :mod:`.attention`).
Subclasses are quantized when their forward is the base one (mmcv's
``Linear``/``Conv2d`` wrappers, used by mmcv's ``FFN`` and many heads);
others are listed with the reason they stay in float. The
3-channel patch-embedding convolution and the patch embeddings / patch
merging layers of every family (:mod:`gpusq_mm.utils.scope`) are kept in
high precision by default (``quant_patch_embed=False``): they hold few
weights, see raw pixels or downsample, and TensorRT gains nothing from an
int8 conv with C=3. ``scope`` limits quantization to the backbone (the
hooks' default) or backbone and neck. Users refine the selection with
include/exclude regexes on module names.
"""
from typing import Dict, Optional, Sequence

from torch import nn

from gpusq_mm.utils.names import select_by_name
from gpusq_mm.utils.scope import scope_reasons

from .attention import (SUPPORTED_ATTENTION, is_supported_attention,
                        quantize_attention, quantize_mha_gemms)
from .attention_mha import mha_gemm_reason
from .functional_linear import adapt_functional_blocks
from .quant_layers import quantize_module, unsupported_reason


def select_quant_layers(model: nn.Module,
                        include: Optional[Sequence[str]] = None,
                        exclude: Optional[Sequence[str]] = None,
                        quant_patch_embed: bool = False,
                        scope: str = 'all') -> Dict[str, str]:
    """Decide which Linear/Conv2d layers (and ``nn.MultiheadAttention``
    input projections, under the attention module's name) are
    fake-quantized.

    Args:
        model (nn.Module): The model to quantize.
        include (Sequence[str], optional): Regexes; only matching layers
            are quantized. Defaults to None (all).
        exclude (Sequence[str], optional): Regexes of layers kept in high
            precision. Defaults to None.
        quant_patch_embed (bool): Quantize the patch embeddings and patch
            merging layers too. Defaults to False.
        scope (str): ``'backbone'``, ``'backbone+neck'`` or ``'all'``
            (resolved for ``model``, see :mod:`gpusq_mm.utils.scope`).
            Defaults to 'all'.

    Returns:
        dict: ``{name: reason}``; '' means quantized.
    """
    layers = {n: m for n, m in model.named_modules()
              if isinstance(m, (nn.Linear, nn.Conv2d, nn.MultiheadAttention))}
    decisions = select_by_name(layers, include, exclude,
                               what='Linear, Conv2d or MultiheadAttention')
    in_scope = scope_reasons(model, layers, scope, not quant_patch_embed)
    decisions = {n: reason or in_scope[n] or _unsupported(layers[n])
                 for n, reason in decisions.items()}
    return _tie_out_proj(decisions, layers)


def _unsupported(module: nn.Module) -> str:
    if isinstance(module, nn.MultiheadAttention):
        return mha_gemm_reason(module)
    return unsupported_reason(module)


def _tie_out_proj(decisions: Dict[str, str],
                  layers: Dict[str, nn.Module]) -> Dict[str, str]:
    """An ``nn.MultiheadAttention``'s ``out_proj`` runs as a module only
    when the attention's explicit forward replaces the stock one, i.e.
    when its input projections are quantized too; otherwise its forward is
    bypassed and it stays float (never a quantizer that sees no data)."""
    for name, module in layers.items():
        out = f'{name}.out_proj'
        if isinstance(module, nn.MultiheadAttention) and decisions[name] \
                and not decisions.get(out, 'x'):
            decisions[out] = ('output projection of an nn.MultiheadAttention '
                              'whose input projections stay float (forward '
                              f'bypassed: {decisions[name]})')
    return decisions


def insert_quantizers(model: nn.Module, decisions: Dict[str, str],
                      weight_bits: int = 8) -> Dict[str, nn.Module]:
    """Swap the selected layers to their fake-quantized classes in place.

    Args:
        model (nn.Module): The model.
        decisions (dict): Output of :func:`select_quant_layers`.
        weight_bits (int): 8 (W8A8) or 4 (W4A8). Defaults to 8.

    Blocks that apply a quantized layer's weight with ``F.linear``
    themselves get an adapter (:mod:`.functional_linear`).

    Returns:
        dict: ``{name: layer}`` of the quantized layers.
    """
    if weight_bits not in (4, 8):
        raise ValueError(f'weight_bits must be 8 (W8A8) or 4 (W4A8), got '
                         f'{weight_bits}')
    modules = dict(model.named_modules())
    done = {}
    for name, reason in decisions.items():
        if reason:
            continue
        module = modules[name]
        done[name] = quantize_mha_gemms(module, weight_bits) \
            if isinstance(module, nn.MultiheadAttention) else \
            quantize_module(module, weight_bits)
    adapt_functional_blocks(model)
    return done


def select_attention(model: nn.Module,
                     include: Optional[Sequence[str]] = None,
                     exclude: Optional[Sequence[str]] = None
                     ) -> Dict[str, str]:
    """Decide which attention modules get quantized matmuls (q·kᵀ, attn·v).

    Candidates are the modules of ``SUPPORTED_ATTENTION`` (Swin's window
    attention in mmdet/mmseg/mmpretrain, mmpretrain's ``MultiheadAttention``
    and ``nn.MultiheadAttention``, which mmcv's wrapper, the DETR family and
    SegFormer use). Other modules whose class name says attention and that
    hold no supported one are listed with the reason they stay in float.

    Args:
        model (nn.Module): The model.
        include (Sequence[str], optional): Regexes; only matching modules.
            Defaults to None (all).
        exclude (Sequence[str], optional): Regexes of modules left in float.
            Defaults to None.

    Returns:
        dict: ``{name: reason}``; '' means the matmuls are quantized.
    """
    supported = {n: m for n, m in model.named_modules()
                 if is_supported_attention(m)}
    decisions = select_by_name(supported, include, exclude,
                               what='attention module')
    for name, module in model.named_modules():
        cls = type(module).__name__
        if name in supported or not ('Attention' in cls or 'MSA' in cls):
            continue
        if not any(s.startswith(f'{name}.') for s in supported):
            known = ', '.join(SUPPORTED_ATTENTION)
            decisions[name] = (f'{cls} is not a supported attention class '
                               f'(supported: {known})')
    return decisions


def insert_attention_quantizers(model: nn.Module,
                                decisions: Dict[str, str]
                                ) -> Dict[str, nn.Module]:
    """Give the selected attention modules fake-quantized matmuls.

    Args:
        model (nn.Module): The model.
        decisions (dict): Output of :func:`select_attention`.

    Returns:
        dict: ``{name: module}`` of the modified attention modules.
    """
    modules = dict(model.named_modules())
    return {name: quantize_attention(modules[name])
            for name, reason in decisions.items() if not reason}

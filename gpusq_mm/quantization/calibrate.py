"""Calibration: collect activation ranges, then freeze the scales."""
import math
from typing import Callable, Dict, Optional

import torch
from torch import nn

from .calibrators import CALIBRATORS, amax_from_samples
from .attention_mha import has_quant_gemms
from .quant_layers import quant_layers
from .tensor_quantizer import TensorQuantizer


def range_holders(model: nn.Module) -> Dict[str, nn.Module]:
    """``{name: module}`` of everything with a calibrated activation range:
    fake-quantized layers (their input, ``input_amax``) and standalone
    :class:`TensorQuantizer` s (attention matmul operands, ``amax``)."""
    holders: Dict[str, nn.Module] = dict(quant_layers(model))
    holders.update({n: m for n, m in model.named_modules()
                    if isinstance(m, TensorQuantizer)})
    return holders


def quant_gemms(model: nn.Module) -> Dict[str, nn.Module]:
    """``{name: module}`` of everything with quantized weights: the
    fake-quantized layers and the ``nn.MultiheadAttention`` modules whose
    input projections are quantized (both expose ``weight_amax`` and
    ``update_weight_amax()``)."""
    gemms: Dict[str, nn.Module] = dict(quant_layers(model))
    gemms.update({n: m for n, m in model.named_modules()
                  if has_quant_gemms(m)})
    return gemms


def _amax(holder: nn.Module) -> torch.Tensor:
    return holder.amax if isinstance(holder, TensorQuantizer) \
        else holder.input_amax


@torch.no_grad()
def calibrate(model: nn.Module,
              forward_loop: Callable[[nn.Module], None],
              calibrator: str = 'max',
              reduce_fn: Optional[Callable[[torch.Tensor], None]] = None,
              percentile: float = 99.99) -> Dict[str, float]:
    """Calibrate every fake-quantized layer of ``model`` and switch it on.

    Args:
        model (nn.Module): Model with quantizers inserted.
        forward_loop (Callable): Runs calibration batches through ``model``
            (the caller chooses data and mode; eval mode is recommended).
        calibrator (str): Range statistic, one of ``CALIBRATORS`` (see
            :mod:`.calibrators`). Defaults to 'max'.
        reduce_fn (Callable, optional): In-place reduction (max) across
            processes, e.g. an all-reduce, applied to the input ranges and
            to the weight ranges.
            Defaults to None.
        percentile (float): For ``'percentile'``. Defaults to 99.99.

    Returns:
        dict: ``{name: amax}`` after calibration, for every layer input and
        attention-matmul operand.

    Raises:
        ValueError: Unknown calibrator, or a range is not finite (NaN/inf
            inputs). Layers the loop never reached keep ``input_amax == 0``
            and stay in float (state ``'off'``).
    """
    if calibrator not in CALIBRATORS:
        raise ValueError(f'unknown calibrator {calibrator!r}; choose one of '
                         f'{CALIBRATORS}')
    holders = range_holders(model)
    for holder in holders.values():
        _amax(holder).zero_()
        holder.quant_state = 'calib'
        holder.calib_samples = [] if calibrator != 'max' else None
    try:
        forward_loop(model)
    finally:
        for holder in holders.values():
            holder.quant_state = 'off'
    names = list(holders)
    if not names:
        return {}
    amax = torch.stack([_amax(holders[n]) for n in names])
    if calibrator != 'max':
        finite = torch.isfinite(amax)
        for i, name in enumerate(names):
            samples = holders[name].calib_samples
            if finite[i] and samples:
                amax[i] = amax_from_samples(torch.cat(samples), calibrator,
                                            percentile)
    for holder in holders.values():
        holder.calib_samples = None
    if reduce_fn is not None:
        reduce_fn(amax)
    bad = [n for n, a in zip(names, amax.tolist()) if not math.isfinite(a)]
    if bad:
        raise ValueError(f'calibration produced non-finite ranges for '
                         f'{bad[:5]} (NaN or inf in the calibration inputs); '
                         'check the data pipeline')
    for name, value in zip(names, amax):
        _amax(holders[name]).copy_(value)
    layers = quant_gemms(model)
    names = list(layers)
    for layer in layers.values():
        layer.update_weight_amax()
    if reduce_fn is not None and names:  # identical weight ranges per rank
        flat = torch.cat([layers[n].weight_amax.flatten() for n in names])
        reduce_fn(flat)
        for chunk, name in zip(
                flat.split([layers[n].weight_amax.numel() for n in names]),
                names):
            layers[name].weight_amax.copy_(chunk.view_as(
                layers[name].weight_amax))
    enable_quant(model)
    return {n: float(_amax(holders[n]).detach()) for n in holders}


def enable_quant(model: nn.Module) -> None:
    """Switch calibrated layers and quantizers (range > 0) to fake
    quantization; those the calibration never reached stay in float."""
    for holder in range_holders(model).values():
        holder.quant_state = 'quant' if float(_amax(holder).detach()) > 0 \
            else 'off'

"""Calibration: collect activation ranges, then freeze the scales."""
import math
from typing import Callable, Dict, Optional

import torch
from torch import nn

from .calibrators import CALIBRATORS, amax_from_samples
from .quant_layers import quant_layers


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
        dict: ``{layer: input_amax}`` after calibration.

    Raises:
        ValueError: Unknown calibrator, or a range is not finite (NaN/inf
            inputs). Layers the loop never reached keep ``input_amax == 0``
            and stay in float (state ``'off'``).
    """
    if calibrator not in CALIBRATORS:
        raise ValueError(f'unknown calibrator {calibrator!r}; choose one of '
                         f'{CALIBRATORS}')
    layers = quant_layers(model)
    for layer in layers.values():
        layer.input_amax.zero_()
        layer.quant_state = 'calib'
        layer.calib_samples = [] if calibrator != 'max' else None
    try:
        forward_loop(model)
    finally:
        for layer in layers.values():
            layer.quant_state = 'off'
    names = list(layers)
    if not names:
        return {}
    amax = torch.stack([layers[n].input_amax for n in names])
    if calibrator != 'max':
        finite = torch.isfinite(amax)
        for i, name in enumerate(names):
            samples = layers[name].calib_samples
            if finite[i] and samples:
                amax[i] = amax_from_samples(torch.cat(samples), calibrator,
                                            percentile)
    for layer in layers.values():
        layer.calib_samples = None
    if reduce_fn is not None:
        reduce_fn(amax)
    bad = [n for n, a in zip(names, amax.tolist()) if not math.isfinite(a)]
    if bad:
        raise ValueError(f'calibration produced non-finite ranges for '
                         f'{bad[:5]} (NaN or inf in the calibration inputs); '
                         'check the data pipeline')
    for name, value in zip(names, amax):
        layers[name].input_amax.copy_(value)
        layers[name].update_weight_amax()
    if reduce_fn is not None:  # weight ranges identical on every rank too
        flat = torch.cat([layers[n].weight_amax.flatten() for n in names])
        reduce_fn(flat)
        for chunk, name in zip(
                flat.split([layers[n].weight_amax.numel() for n in names]),
                names):
            layers[name].weight_amax.copy_(chunk.view_as(
                layers[name].weight_amax))
    enable_quant(model)
    return {n: float(a) for n, a in zip(names, amax)}


def enable_quant(model: nn.Module) -> None:
    """Switch calibrated layers (``input_amax > 0``) to fake quantization."""
    for layer in quant_layers(model).values():
        layer.quant_state = 'quant' if float(layer.input_amax) > 0 else 'off'

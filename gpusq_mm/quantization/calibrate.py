"""Calibration: collect activation ranges, then freeze the scales."""
import math
from typing import Callable, Dict, List, Optional

import torch
from torch import Tensor, nn

from .attention_mha import has_quant_gemms
from .calibrators import CALIBRATORS, amax_from_histogram
from .histogram import DEFAULT_BINS, RunningHistogram
from .quant_layers import quant_layers
from .tensor_quantizer import TensorQuantizer

Reduce = Callable[[Tensor], None]
NEVER_CALLED = ('never called during calibration: its forward is bypassed '
                '(e.g. a functional call on its weight) or only runs in '
                'training; left in float')
ZERO_INPUTS = 'saw only zero inputs during calibration; left in float'
TRAINING_ONLY = ('training-only module (auxiliary head, not run at '
                 'inference); left in float')
# top-level children that only the training loss runs (mmseg)
TRAINING_ONLY_MODULES = ('auxiliary_head', )


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
              reduce_fn: Optional[Reduce] = None,
              percentile: float = 99.99,
              sum_fn: Optional[Reduce] = None,
              bins: int = DEFAULT_BINS) -> Dict[str, float]:
    """Calibrate every fake-quantized layer of ``model`` and switch it on.

    Args:
        model (nn.Module): Model with quantizers inserted.
        forward_loop (Callable): Runs calibration batches through ``model``
            (the caller chooses data and mode; eval mode is recommended).
        calibrator (str): Range statistic, one of ``CALIBRATORS`` (see
            :mod:`.calibrators`). Defaults to 'max'.
        reduce_fn (Callable, optional): In-place max across processes
            (e.g. an all-reduce), applied to the running max, the
            histogram ranges and the weight ranges. Defaults to None.
        percentile (float): For ``'percentile'``. Defaults to 99.99.
        sum_fn (Callable, optional): In-place sum across processes, applied
            to the histograms (merged before the statistic is taken) and
            the call counts. Required with ``reduce_fn`` for the histogram
            calibrators. Defaults to None.
        bins (int): Histogram bins (a power of two). Defaults to 4096.

    Returns:
        dict: ``{name: amax}`` after calibration, for every layer input and
        attention-matmul operand. Ranges the loop never reached are 0 and
        stay in float (state ``'off'``); :func:`uncalibrated` says why.

    Raises:
        ValueError: Unknown calibrator, missing ``sum_fn``, or a range is
            not finite (NaN/inf inputs).
    """
    if calibrator not in CALIBRATORS:
        raise ValueError(f'unknown calibrator {calibrator!r}; choose one of '
                         f'{CALIBRATORS}')
    if calibrator != 'max' and reduce_fn is not None and sum_fn is None:
        raise ValueError(f'calibrator {calibrator!r} across processes needs '
                         'sum_fn to merge the histograms')
    holders = range_holders(model)
    _collect(model, holders, forward_loop, calibrator != 'max', bins)
    names = list(holders)
    if not names:
        return {}
    amax = torch.stack([_amax(holders[n]) for n in names])
    if reduce_fn is not None:
        reduce_fn(amax)
    _count_calls(holders, names, amax.device, sum_fn)
    if calibrator != 'max':
        hists = [holders[n].calib_hist for n in names]
        merge_histograms(hists, amax.device, reduce_fn, sum_fn)
        for i, hist in enumerate(hists):
            if torch.isfinite(amax[i]) and hist.hist is not None:
                amax[i] = amax_from_histogram(
                    hist.hist, hist.width, calibrator, float(amax[i]),
                    percentile)
    for holder in holders.values():
        holder.calib_hist = None
    bad = [n for n, a in zip(names, amax.tolist()) if not math.isfinite(a)]
    if bad:
        raise ValueError(f'calibration produced non-finite ranges for '
                         f'{bad[:5]} (NaN or inf in the calibration inputs); '
                         'check the data pipeline')
    for name, value in zip(names, amax):
        _amax(holders[name]).copy_(value)
    _calibrate_weights(model, reduce_fn)
    enable_quant(model)
    return {n: float(_amax(holders[n]).detach()) for n in holders}


def _collect(model: nn.Module, holders: Dict[str, nn.Module],
             forward_loop: Callable[[nn.Module], None], histogram: bool,
             bins: int) -> None:
    """Run ``forward_loop`` with every holder recording its inputs."""
    for holder in holders.values():
        _amax(holder).zero_()
        holder.quant_state = 'calib'
        holder.calib_calls = 0
        holder.calib_hist = RunningHistogram(bins) if histogram else None
    try:
        forward_loop(model)
    finally:
        for holder in holders.values():
            holder.quant_state = 'off'


def _count_calls(holders: Dict[str, nn.Module], names: List[str], device,
                 sum_fn: Optional[Reduce]) -> None:
    """Sum the calibration calls of every holder across processes."""
    calls = torch.tensor([float(holders[n].calib_calls) for n in names],
                         dtype=torch.float64, device=device)
    if sum_fn is not None:
        sum_fn(calls)
    for name, count in zip(names, calls.tolist()):
        holders[name].calib_calls = int(count)


def merge_histograms(hists: List[RunningHistogram], device,
                     reduce_fn: Optional[Reduce],
                     sum_fn: Optional[Reduce]) -> None:
    """Make every process hold the histograms of all processes' data, in
    place: the ranges are brought to the largest of any process, then the
    counts are summed. A no-op without ``reduce_fn``/``sum_fn``."""
    if reduce_fn is None or sum_fn is None or not hists:
        return
    exps = torch.tensor([float('-inf') if h.exponent is None else
                         float(h.exponent) for h in hists],
                        dtype=torch.float64, device=device)
    zeros = torch.tensor([float(h.zeros) for h in hists],
                         dtype=torch.float64, device=device)
    reduce_fn(exps)
    sum_fn(zeros)
    for hist, exp, zero in zip(hists, exps.tolist(), zeros.tolist()):
        if math.isfinite(exp):
            hist.grow_to(int(exp), device)
            hist.hist = hist.hist.to(device)
        else:
            hist.zeros = int(zero)
    present = [h for h in hists if h.hist is not None]
    if present:
        counts = torch.stack([h.hist for h in present])
        sum_fn(counts)
        for hist, row in zip(present, counts):
            hist.hist = row


def _calibrate_weights(model: nn.Module, reduce_fn: Optional[Reduce]) -> None:
    """Per-channel weight ranges, identical on every process."""
    layers = quant_gemms(model)
    names = list(layers)
    for layer in layers.values():
        layer.update_weight_amax()
    if reduce_fn is not None and names:
        flat = torch.cat([layers[n].weight_amax.flatten() for n in names])
        reduce_fn(flat)
        for chunk, name in zip(
                flat.split([layers[n].weight_amax.numel() for n in names]),
                names):
            layers[name].weight_amax.copy_(chunk.view_as(
                layers[name].weight_amax))


def uncalibrated(model: nn.Module) -> Dict[str, str]:
    """``{name: reason}`` of the ranges that calibration left at 0 (they
    stay in float), e.g. layers whose forward never ran."""
    out = {}
    for name, holder in range_holders(model).items():
        if float(_amax(holder).detach()) > 0:
            continue
        calls = getattr(holder, 'calib_calls', 0)
        if calls:
            out[name] = ZERO_INPUTS
        elif name.split('.', 1)[0] in TRAINING_ONLY_MODULES:
            out[name] = TRAINING_ONLY
        else:
            out[name] = NEVER_CALLED
    return out


def enable_quant(model: nn.Module) -> None:
    """Switch calibrated layers and quantizers (range > 0) to fake
    quantization; those the calibration never reached stay in float."""
    for holder in range_holders(model).values():
        holder.quant_state = 'quant' if float(_amax(holder).detach()) > 0 \
            else 'off'

"""Calibration: collect activation ranges, then freeze the scales."""
import math
from typing import Callable, Dict, List, Optional, Union

import torch
from torch import Tensor, nn

from .attention_mha import has_quant_gemms
from .calibrators import Calibrator, build_calibrator
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


def range_holders(model: nn.Module) -> Dict[str, TensorQuantizer]:
    """``{name: quantizer}`` of every calibrated activation range: the input
    quantizers of the fake-quantized layers (named after their layer) and
    the other per-tensor quantizers (attention matmul operands,
    ``nn.MultiheadAttention`` input projections)."""
    layers = quant_layers(model)
    holders: Dict[str, TensorQuantizer] = {
        n: layer.input_quantizer for n, layer in layers.items()}
    owned = {id(q) for q in holders.values()}
    holders.update({n: m for n, m in model.named_modules()
                    if isinstance(m, TensorQuantizer) and not m.per_channel
                    and id(m) not in owned})
    return holders


def quant_gemms(model: nn.Module) -> Dict[str, nn.Module]:
    """``{name: module}`` of everything with quantized weights: the
    fake-quantized layers and the ``nn.MultiheadAttention`` modules whose
    input projections are quantized (both have a ``weight_quantizer`` and
    ``calibrate_weight()``)."""
    gemms: Dict[str, nn.Module] = dict(quant_layers(model))
    gemms.update({n: m for n, m in model.named_modules()
                  if has_quant_gemms(m)})
    return gemms


@torch.no_grad()
def calibrate(model: nn.Module,
              forward_loop: Callable[[nn.Module], None],
              calibrator: Union[str, Calibrator] = 'max',
              reduce_fn: Optional[Reduce] = None,
              percentile: float = 99.99,
              sum_fn: Optional[Reduce] = None,
              bins: int = DEFAULT_BINS) -> Dict[str, float]:
    """Calibrate every fake-quantized layer of ``model`` and switch it on.

    Args:
        model (nn.Module): Model with quantizers inserted.
        forward_loop (Callable): Runs calibration batches through ``model``
            (the caller chooses data and mode; eval mode is recommended).
        calibrator (str | Calibrator): Range statistic, a key of
            ``CALIBRATORS`` (see :mod:`.calibrators`). Defaults to 'max'.
        reduce_fn (Callable, optional): In-place max across processes
            (e.g. an all-reduce), applied to the running max, the
            histogram ranges and the weight ranges. Defaults to None.
        percentile (float): For ``'percentile'`` given by name.
            Defaults to 99.99.
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
    calibrator = build_calibrator(calibrator, percentile=percentile)
    if calibrator.uses_histogram and reduce_fn is not None and \
            sum_fn is None:
        raise ValueError(f'calibrator {calibrator.name!r} across processes '
                         'needs sum_fn to merge the histograms')
    holders = range_holders(model)
    _collect(model, holders, forward_loop,
             bins if calibrator.uses_histogram else None)
    names = list(holders)
    if not names:
        return {}
    amax = torch.stack([holders[n].amax.detach() for n in names])
    if reduce_fn is not None:
        reduce_fn(amax)
    _count_calls(holders, names, amax.device, sum_fn)
    hists = [holders[n].calib_hist for n in names]
    if calibrator.uses_histogram:
        merge_histograms(hists, amax.device, reduce_fn, sum_fn)
    for i, hist in enumerate(hists):
        if torch.isfinite(amax[i]):
            amax[i] = calibrator.compute_amax(hist, float(amax[i]))
    bad = [n for n, a in zip(names, amax.tolist()) if not math.isfinite(a)]
    for name, value in zip(names, amax):
        holders[name].load_calib_amax(None if bad else value)
    if bad:
        raise ValueError(f'calibration produced non-finite ranges for '
                         f'{bad[:5]} (NaN or inf in the calibration inputs); '
                         'check the data pipeline')
    _calibrate_weights(model, reduce_fn)
    enable_quant(model)
    return {n: float(holders[n].amax.detach()) for n in holders}


def _collect(model: nn.Module, holders: Dict[str, TensorQuantizer],
             forward_loop: Callable[[nn.Module], None],
             bins: Optional[int]) -> None:
    """Run ``forward_loop`` with every holder recording its inputs (and
    every other quantizer off)."""
    disable_quant(model)
    for holder in holders.values():
        holder.enable_calibration(bins)
    try:
        forward_loop(model)
    finally:
        for holder in holders.values():
            holder.disable()


def _count_calls(holders: Dict[str, TensorQuantizer], names: List[str],
                 device, sum_fn: Optional[Reduce]) -> None:
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
    gemms = quant_gemms(model)
    quantizers = [g.weight_quantizer for g in gemms.values()]
    for gemm in gemms.values():
        gemm.calibrate_weight()
    if reduce_fn is not None and quantizers:
        flat = torch.cat([q.amax.detach().flatten() for q in quantizers])
        reduce_fn(flat)
        for chunk, quantizer in zip(
                flat.split([q.amax.numel() for q in quantizers]),
                quantizers):
            quantizer.load_calib_amax(chunk.view_as(quantizer.amax))


def uncalibrated(model: nn.Module) -> Dict[str, str]:
    """``{name: reason}`` of the ranges that calibration left at 0 (they
    stay in float), e.g. layers whose forward never ran."""
    out = {}
    for name, holder in range_holders(model).items():
        if holder.is_calibrated:
            continue
        if holder.calib_calls:
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
        holder.enable_quant()
    for gemm in quant_gemms(model).values():
        gemm.enable_quant()


def disable_quant(model: nn.Module) -> None:
    """Switch every quantizer of ``model`` off (the float model with the
    same weights); :func:`enable_quant` switches them on again."""
    for quantizer in model.modules():
        if isinstance(quantizer, TensorQuantizer):
            quantizer.disable()

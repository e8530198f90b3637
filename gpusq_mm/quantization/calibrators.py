"""Activation-range statistics.

Every quantizer in calibration keeps the exact running max of |x| and, for
the histogram calibrators, a :class:`.histogram.RunningHistogram` of
**all** values of every calibration batch (merged across DDP ranks before
the statistic is taken):

- ``max``: the largest |x| seen (exact, no histogram).
- ``percentile``: the given percentile of |x| (e.g. 99.9 or 99.99): the
  upper edge of the bin holding the order statistic that
  ``torch.quantile(..., interpolation='higher')`` returns (so at most one
  bin width above it).
- ``mse``: the bin edge whose int8 fake quantization of the histogram
  (every value at its bin centre) has the smallest mean squared error.
- ``entropy``: TensorRT's KL calibration: the bin edge ``i`` for which the
  histogram clipped at ``i`` (outliers added to its last bin) and its
  128-level quantized version differ least (KL divergence). The quantized
  version merges the ``i`` bins into 128 groups (bin ``j`` into group
  ``j * 128 // i``) and spreads each group's count evenly over its non-empty
  bins.
"""
import math
from typing import Optional

import torch
from torch import Tensor

from .histogram import RunningHistogram

CALIBRATORS = ('max', 'percentile', 'mse', 'entropy')
# at most this many candidate edges are scored by mse and entropy
MAX_CANDIDATES = 1024


@torch.no_grad()
def record_range(amax: Tensor, hist: Optional[RunningHistogram],
                 x: Tensor) -> None:
    """Calibration step shared by every quantizer: raise the running max
    ``amax`` (in place) to ``max|x|`` and, for the histogram calibrators,
    count every |x| in ``hist``."""
    amax.copy_(torch.maximum(amax, x.detach().abs().amax().float()))
    if hist is not None:
        hist.update(x)


def amax_from_histogram(hist: Tensor, width: float, method: str,
                        top: float, percentile: float = 99.99,
                        levels: int = 128) -> float:
    """The calibrated range of |x| from its histogram.

    Args:
        hist (Tensor): Counts of bins ``[j * width, (j + 1) * width)``.
        width (float): Bin width.
        method (str): One of ``CALIBRATORS``.
        top (float): The exact max |x| (no range exceeds it).
        percentile (float): For ``'percentile'``. Defaults to 99.99.
        levels (int): Positive int8 levels of ``'entropy'``.
            Defaults to 128.

    Returns:
        float: ``amax`` (0 for an empty or all-zero histogram).
    """
    if method not in CALIBRATORS:
        raise ValueError(f'unknown calibrator {method!r}; choose one of '
                         f'{CALIBRATORS}')
    hist = hist.double().cpu()
    if method == 'max' or top <= 0 or width <= 0 or hist.sum() <= 0:
        return top
    used = int(torch.nonzero(hist).max()) + 1
    hist = hist[:used]
    if method == 'percentile':
        value = _percentile_edge(hist, percentile) * width
    elif method == 'mse':
        value = _mse_edge(hist, width) * width
    else:
        value = _entropy_edge(hist, levels) * width
    return min(value, top)


def _percentile_edge(hist: Tensor, percentile: float) -> int:
    """Upper edge (in bins) of the bin holding the ``percentile``."""
    cdf = hist.cumsum(0)
    # 1-based rank of the 'higher' order statistic of torch.quantile
    rank = math.ceil(percentile / 100.0 * (float(cdf[-1]) - 1)) + 1
    return int(torch.searchsorted(cdf, torch.tensor([rank],
                                                    dtype=cdf.dtype))) + 1


def _candidates(first: int, last: int) -> range:
    stride = max(1, math.ceil((last - first + 1) / MAX_CANDIDATES))
    return range(last, first - 1, -stride)  # always scores the full range


def _mse_edge(hist: Tensor, width: float) -> int:
    """Edge (in bins) of the smallest fake-quantization error."""
    centers = (torch.arange(hist.numel(), dtype=torch.float64) + 0.5)
    edges = torch.tensor(list(_candidates(1, hist.numel())),
                         dtype=torch.float64)
    errors = []
    for chunk in edges.split(64):
        scale = chunk[:, None] / 127.0
        q = torch.clamp(torch.round(centers / scale), -127, 127) * scale
        errors.append(((q - centers).pow(2) * hist).sum(dim=1))
    errors = torch.cat(errors)
    best = int(torch.nonzero(errors == errors.min()).max())  # widest tie
    return int(edges[best])


def kl_of_clipping(hist: Tensor, i: int, levels: int = 128) -> float:
    """KL divergence between ``hist`` clipped at ``i`` bins and its
    ``levels``-level quantization (see the module docstring)."""
    ref = hist[:i].clone()
    ref[-1] += hist[i:].sum()
    kept = hist[:i]
    group = torch.arange(i) * levels // i
    nonzero = (kept > 0).double()
    sums = torch.zeros(levels, dtype=torch.float64).index_add_(0, group, kept)
    counts = torch.zeros(levels, dtype=torch.float64).index_add_(
        0, group, nonzero)
    q = nonzero * (sums / counts.clamp_min(1))[group]
    p = ref / ref.sum()
    q = q / q.sum().clamp_min(1e-12)
    mask = p > 0
    return float((p[mask] * (p[mask] / q[mask].clamp_min(1e-12)).log())
                 .sum())


def _entropy_edge(hist: Tensor, levels: int) -> int:
    """Edge (in bins) of the smallest KL divergence."""
    if hist.numel() <= levels:
        return hist.numel()
    best, best_kl = hist.numel(), float('inf')
    for i in _candidates(levels, hist.numel()):
        kl = kl_of_clipping(hist, i, levels)
        if kl < best_kl:
            best, best_kl = i, kl
    return best

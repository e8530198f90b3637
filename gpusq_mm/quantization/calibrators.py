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
from typing import Dict, Optional, Type, Union

import torch
from torch import Tensor

from .histogram import RunningHistogram

# at most this many candidate edges are scored by mse and entropy
MAX_CANDIDATES = 1024


class Calibrator:
    """Turns what a quantizer saw in calibration into its range.

    Args:
        percentile (float): For ``'percentile'``, in (0, 100].
            Defaults to 99.99.
        levels (int): Positive int8 levels of ``'entropy'``.
            Defaults to 128.

    Attributes:
        name (str): The calibrator's key in :data:`CALIBRATORS`.
        uses_histogram (bool): Whether quantizers must keep a histogram.
    """

    name = ''
    uses_histogram = True

    def __init__(self, percentile: float = 99.99, levels: int = 128) -> None:
        if not 0 < percentile <= 100:
            raise ValueError(f'percentile must be in (0, 100], got '
                             f'{percentile!r}')
        self.percentile = percentile
        self.levels = levels

    def compute_amax(self, hist: Optional[RunningHistogram],
                     top: float) -> float:
        """The range from a quantizer's histogram and exact max |x|.

        Args:
            hist (RunningHistogram, optional): Its histogram (None for the
                max calibrator).
            top (float): The exact max |x| (no range exceeds it).

        Returns:
            float: ``amax`` (``top`` for an empty histogram).
        """
        if hist is None or hist.hist is None:
            return top
        return self.amax_from_counts(hist.hist, hist.width, top)

    def amax_from_counts(self, hist: Tensor, width: float,
                         top: float) -> float:
        """The range from histogram counts of bins ``[j * width, (j + 1) *
        width)`` and the exact max ``top``."""
        hist = hist.double().cpu()
        if not self.uses_histogram or top <= 0 or width <= 0 or \
                hist.sum() <= 0:
            return top
        used = int(torch.nonzero(hist).max()) + 1
        return min(self._edge(hist[:used]) * width, top)

    def _edge(self, hist: Tensor) -> float:
        """The chosen upper edge, in bins."""
        raise NotImplementedError


class MaxCalibrator(Calibrator):
    """The largest |x| seen (exact, no histogram)."""

    name = 'max'
    uses_histogram = False


class PercentileCalibrator(Calibrator):
    """The ``percentile`` of |x|."""

    name = 'percentile'

    def _edge(self, hist: Tensor) -> float:
        return _percentile_edge(hist, self.percentile)


class MseCalibrator(Calibrator):
    """The edge of the smallest int8 fake-quantization error."""

    name = 'mse'

    def _edge(self, hist: Tensor) -> float:
        return _mse_edge(hist)


class EntropyCalibrator(Calibrator):
    """TensorRT's KL-divergence calibration."""

    name = 'entropy'

    def _edge(self, hist: Tensor) -> float:
        return _entropy_edge(hist, self.levels)


#: Calibrator name -> class; the one list of the valid names.
CALIBRATORS: Dict[str, Type[Calibrator]] = {
    cls.name: cls for cls in (MaxCalibrator, PercentileCalibrator,
                              MseCalibrator, EntropyCalibrator)
}


def build_calibrator(calibrator: Union[str, Calibrator],
                     **kwargs) -> Calibrator:
    """The calibrator named ``calibrator`` (an instance is returned as is).

    Args:
        calibrator (str | Calibrator): A key of :data:`CALIBRATORS`.
        **kwargs: ``percentile``, ``levels``.

    Raises:
        ValueError: Unknown name, or a bad option.
    """
    if isinstance(calibrator, Calibrator):
        return calibrator
    if calibrator not in CALIBRATORS:
        raise ValueError(f'unknown calibrator {calibrator!r}; choose one of '
                         f'{tuple(CALIBRATORS)}')
    return CALIBRATORS[calibrator](**kwargs)


def amax_from_histogram(hist: Tensor, width: float, method: str,
                        top: float, percentile: float = 99.99,
                        levels: int = 128) -> float:
    """The calibrated range of |x| from its histogram.

    Args:
        hist (Tensor): Counts of bins ``[j * width, (j + 1) * width)``.
        width (float): Bin width.
        method (str): A key of ``CALIBRATORS``.
        top (float): The exact max |x| (no range exceeds it).
        percentile (float): For ``'percentile'``. Defaults to 99.99.
        levels (int): Positive int8 levels of ``'entropy'``.
            Defaults to 128.

    Returns:
        float: ``amax`` (``top`` for an empty or all-zero histogram).
    """
    return build_calibrator(method, percentile=percentile,
                            levels=levels).amax_from_counts(hist, width, top)


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


def _mse_edge(hist: Tensor) -> int:
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

"""A running histogram of |x| over every value a quantizer sees.

The histogram has a fixed number of bins over ``[0, range)``, where
``range`` is always a power of two (the smallest one above the largest |x|
seen so far). When a batch holds a larger value, the range grows by a
factor ``2**d`` and every ``2**d`` neighbouring bins are summed into one:
the bin edges of the coarser histogram are edges of the finer one, so the
result is exactly the histogram that the whole data would have given at the
final range. The same holds across processes: DDP ranks bring their
histograms to the largest range of any rank (:meth:`RunningHistogram.rebin`)
and sum the counts, which gives the histogram of the union of their data.

With ``bins = 4096`` at least half of the bins lie below the largest value,
i.e. the resolution is at least ``max / 2048``, that of TensorRT's entropy
calibration.
"""
import math
from typing import Optional

import torch
from torch import Tensor

DEFAULT_BINS = 4096


def range_exponent(value: float) -> int:
    """``e`` of the smallest power of two ``2**e`` strictly above
    ``value`` (> 0)."""
    _, exponent = math.frexp(value)  # value = m * 2**e, 0.5 <= m < 1
    return exponent


def rebin(hist: Tensor, factor: int) -> Tensor:
    """Sum every ``factor`` (a power of two) neighbouring bins of ``hist``
    into the first bins of a histogram of the same length: the histogram
    of the same data over a ``factor`` times larger range."""
    bins = hist.numel()
    if factor <= 1:
        return hist
    out = torch.zeros_like(hist)
    if factor >= bins:
        out[0] = hist.sum()
        return out
    out[:bins // factor] = hist.view(-1, factor).sum(dim=1)
    return out


class RunningHistogram:
    """Histogram of |x| with range growth (see the module docstring).

    Args:
        bins (int): Number of bins, a power of two. Defaults to 4096.

    Attributes:
        hist (Tensor | None): float64 counts, None before any non-zero
            value (zeros are counted in ``zeros`` until then).
        exponent (int | None): ``range = 2**exponent``.
    """

    def __init__(self, bins: int = DEFAULT_BINS) -> None:
        if bins < 2 or bins & (bins - 1):
            raise ValueError(f'bins must be a power of two >= 2, got {bins}')
        self.bins = bins
        self.hist: Optional[Tensor] = None
        self.exponent: Optional[int] = None
        self.zeros = 0

    @property
    def width(self) -> float:
        """Width of one bin (0 before any non-zero value)."""
        if self.exponent is None:
            return 0.0
        return math.ldexp(1.0, self.exponent) / self.bins

    @property
    def total(self) -> float:
        """Number of values counted."""
        counted = float(self.hist.sum()) if self.hist is not None else 0.0
        return counted + self.zeros

    @torch.no_grad()
    def update(self, x: Tensor) -> None:
        """Count every |x| value of a batch."""
        flat = x.detach().abs().flatten().float()
        if flat.numel() == 0:
            return
        top = float(flat.max())
        if not math.isfinite(top):
            return  # the running max reports non-finite inputs
        if top == 0.0:
            self._count_zeros(flat)
            return
        self.grow_to(range_exponent(top), flat.device)
        idx = torch.div(flat, self.width, rounding_mode='floor').long()
        self.hist += torch.bincount(idx.clamp_(max=self.bins - 1),
                                    minlength=self.bins).double()

    def _count_zeros(self, flat: Tensor) -> None:
        if self.hist is None:
            self.zeros += flat.numel()
        else:
            self.hist[0] += flat.numel()

    def grow_to(self, exponent: int, device=None) -> None:
        """Make the range at least ``2**exponent`` (merging bins)."""
        if self.hist is None:
            self.hist = torch.zeros(self.bins, dtype=torch.float64,
                                    device=device)
            self.hist[0] += self.zeros
            self.zeros = 0
            self.exponent = exponent
        elif exponent > self.exponent:
            self.hist = rebin(self.hist, 2**(exponent - self.exponent))
            self.exponent = exponent

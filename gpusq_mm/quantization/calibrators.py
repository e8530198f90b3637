"""Activation-range statistics computed from calibration samples.

- ``max``: the largest |x| seen (no samples needed).
- ``percentile``: the given percentile of |x| (e.g. 99.9 or 99.99), which
  ignores rare outliers.
- ``mse``: the range among 0.3–1.0 × max whose int8 fake quantization has
  the smallest mean squared error on the samples.
- ``entropy``: TensorRT's calibration: the clipping threshold whose 128-level
  quantized histogram has the smallest KL divergence from the 2048-bin
  reference histogram (outliers folded into the last kept bin).
"""
from typing import List, Optional

import torch
from torch import Tensor

from .fake_quant import fake_quantize

CALIBRATORS = ('max', 'percentile', 'mse', 'entropy')
SAMPLES_PER_CALL = 4096


def subsample(x: Tensor) -> Tensor:
    """A deterministic strided subsample of |x| (at most 4096 values)."""
    flat = x.detach().abs().flatten().float()
    step = max(1, flat.numel() // SAMPLES_PER_CALL)
    return flat[::step][:SAMPLES_PER_CALL].cpu()


@torch.no_grad()
def record_range(amax: Tensor, samples: Optional[List[Tensor]],
                 x: Tensor) -> None:
    """Calibration step shared by every quantizer: raise the running max
    ``amax`` (in place) to ``max|x|`` and, for the sample-based
    calibrators, append a subsample of ``|x|`` to ``samples``."""
    amax.copy_(torch.maximum(amax, x.detach().abs().amax().float()))
    if samples is not None:
        samples.append(subsample(x))


def amax_from_samples(samples: Tensor, method: str,
                      percentile: float = 99.99) -> float:
    """The calibrated range of |x| from ``samples`` (non-negative values)."""
    if samples.numel() == 0:
        return 0.0
    top = float(samples.max())
    if method == 'max' or top == 0.0:
        return top
    if method == 'percentile':
        return float(torch.quantile(samples.double(), percentile / 100.0))
    if method == 'mse':
        return _mse_amax(samples, top)
    if method == 'entropy':
        return _entropy_amax(samples, top)
    raise ValueError(f'unknown calibrator {method!r}; choose one of '
                     f'{CALIBRATORS}')


def _mse_amax(samples: Tensor, top: float) -> float:
    best, best_err = top, float('inf')
    for frac in torch.linspace(0.3, 1.0, 71).tolist():
        amax = torch.tensor(top * frac)
        err = float((fake_quantize(samples, amax) - samples).pow(2).mean())
        if err < best_err:
            best, best_err = top * frac, err
    return best


def _entropy_amax(samples: Tensor, top: float, bins: int = 2048,
                  levels: int = 128) -> float:
    hist = torch.histc(samples.double(), bins=bins, min=0.0, max=top)
    width = top / bins
    best_i, best_kl = bins, float('inf')
    for i in range(levels, bins + 1, 16):
        ref = hist[:i].clone()
        ref[-1] += hist[i:].sum()  # outliers clipped into the last bin
        # quantize the first i bins into `levels` groups, spread evenly over
        # the non-empty bins of each group
        groups = torch.tensor_split(hist[:i], levels)
        expanded = []
        for group in groups:
            nonzero = (group > 0).double()
            share = group.sum() / nonzero.sum().clamp_min(1)
            expanded.append(nonzero * share)
        q = torch.cat(expanded)
        p = ref / ref.sum()
        q = q / q.sum().clamp_min(1e-12)
        mask = p > 0
        kl = float((p[mask] * (p[mask] / q[mask].clamp_min(1e-12)).log())
                   .sum())
        if kl < best_kl:
            best_i, best_kl = i, kl
    return min((best_i + 0.5) * width, top)

"""The 2:4 pattern, encoded once.

Sparse tensor cores (Ampere, Hopper, Orin) accelerate a GEMM when every group
of 4 consecutive weights along the reduction dimension holds at most 2
non-zeros. For ``nn.Linear`` (weight ``(K, C)``) the reduction dimension is
the input features ``C``; for ``nn.Conv2d`` (weight ``(K, C, R, S)``) TensorRT
reduces over ``C`` for every kernel position, so the weight is viewed as
``(K * R * S, C)`` before grouping. Masks are dense boolean tensors of the
weight's shape (what TensorRT's sparse-weights flag consumes: a dense tensor
with zeros).
"""
from typing import Tuple

import torch
from torch import Tensor

GROUP = 4
KEEP = 2


def to_groups_view(weight: Tensor) -> Tensor:
    """View a Linear/Conv weight as rows of input channels ``(N, C)``.

    Args:
        weight (Tensor): 2-D ``(K, C)`` or 4-D ``(K, C, R, S)`` weight.

    Returns:
        Tensor: ``(K, C)`` or ``(K * R * S, C)``; a copy for 4-D weights.
    """
    if weight.dim() == 2:
        return weight
    if weight.dim() == 4:
        return weight.permute(0, 2, 3, 1).reshape(-1, weight.shape[1])
    raise ValueError(f'2:4 groups are defined for 2-D (Linear) and 4-D '
                     f'(Conv2d) weights, got shape {tuple(weight.shape)}')


def from_groups_view(rows: Tensor, shape: Tuple[int, ...]) -> Tensor:
    """Inverse of :func:`to_groups_view` for a tensor of ``shape``."""
    if len(shape) == 2:
        return rows.reshape(shape)
    k, c, r, s = shape
    return rows.reshape(k, r, s, c).permute(0, 3, 1, 2).contiguous()


def _check_divisible(rows: Tensor) -> None:
    if rows.shape[1] % GROUP:
        raise ValueError(f'the input-channel dimension ({rows.shape[1]}) '
                         f'is not a multiple of {GROUP}; such a layer is '
                         'not 2:4 eligible')


@torch.no_grad()
def magnitude_mask(weight: Tensor) -> Tensor:
    """Keep the 2 largest-magnitude weights of every group of 4.

    Ties are broken by position (lower index first), so the result is
    deterministic.

    Args:
        weight (Tensor): Linear or Conv2d weight.

    Returns:
        Tensor: Boolean mask of ``weight.shape``; True = kept.
    """
    rows = to_groups_view(weight.detach().float())
    _check_divisible(rows)
    groups = rows.abs().reshape(-1, GROUP)
    # stable ordering: sort descending by magnitude, ties by position
    order = torch.sort(groups, dim=1, descending=True, stable=True).indices
    keep = torch.zeros_like(groups, dtype=torch.bool)
    keep.scatter_(1, order[:, :KEEP], True)
    return from_groups_view(keep.reshape(rows.shape), tuple(weight.shape))


@torch.no_grad()
def count_violations(weight: Tensor) -> int:
    """Number of groups of 4 with more than 2 non-zeros (0 means 2:4)."""
    rows = to_groups_view(weight.detach())
    _check_divisible(rows)
    nonzero = (rows.reshape(-1, GROUP) != 0).sum(dim=1)
    return int((nonzero > KEEP).sum())


def is_24_sparse(weight: Tensor) -> bool:
    """Whether ``weight`` satisfies the 2:4 pattern exactly."""
    return count_violations(weight) == 0


@torch.no_grad()
def kept_magnitude(weight: Tensor, mask: Tensor) -> float:
    """Fraction of the L1 weight magnitude that ``mask`` keeps."""
    total = weight.detach().abs().sum()
    if total == 0:
        return 1.0
    return float((weight.detach().abs() * mask).sum() / total)

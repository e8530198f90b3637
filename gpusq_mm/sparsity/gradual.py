"""Gradual 2:4: sparsity ramps from dense to the full pattern.

At ramp fraction ``f`` the groups of 4 whose 2:4 pruning costs the least
magnitude are pruned first, a fraction ``f`` of all groups, the others stay
dense; ``f`` follows the cubic schedule of Zhu & Gupta (2017),
``f = 1 - (1 - t / T) ** 3``, so most pruning happens early while the
network can still adapt. At ``f = 1`` the mask is the magnitude 2:4 mask.
"""
import torch
from torch import Tensor

from .pattern import GROUP, from_groups_view, magnitude_mask, to_groups_view


def gradual_fraction(step: int, ramp_iters: int) -> float:
    """Cubic ramp: fraction of groups pruned ``step`` iterations in."""
    if ramp_iters <= 0 or step >= ramp_iters:
        return 1.0
    return 1.0 - (1.0 - max(step, 0) / ramp_iters)**3


@torch.no_grad()
def gradual_mask(weight: Tensor, fraction: float) -> Tensor:
    """2:4 mask on the cheapest ``fraction`` of groups, dense elsewhere.

    Args:
        weight (Tensor): Linear/Conv2d weight.
        fraction (float): In [0, 1]; 1 gives :func:`magnitude_mask`.

    Returns:
        Tensor: Boolean mask of ``weight.shape``.
    """
    full = magnitude_mask(weight)
    if fraction >= 1.0:
        return full
    rows = to_groups_view(weight.detach().float()).abs().reshape(-1, GROUP)
    keep = to_groups_view(full).reshape(-1, GROUP)
    cost = (rows * (~keep)).sum(dim=1)  # magnitude lost by pruning a group
    n_pruned = int(round(fraction * cost.numel()))
    pruned = torch.zeros_like(cost, dtype=torch.bool)
    if n_pruned:
        order = torch.sort(cost, stable=True).indices
        pruned[order[:n_pruned]] = True
    mask = torch.where(pruned[:, None], keep, torch.ones_like(keep))
    return from_groups_view(
        mask.reshape(to_groups_view(weight).shape), tuple(weight.shape))

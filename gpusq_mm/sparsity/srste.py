"""SR-STE (Zhou et al., ICLR 2021): sparse forward, dense weights training.

The forward pass uses ``W * M``; the backward pass hands the dense weights
the gradient of the sparse ones (straight-through) plus the sparse-refined
term ``decay * (1 - M) * W``, which slowly pushes the pruned weights
towards zero so that recomputed masks settle.
"""
import torch
from torch import Tensor


class _SRSTE(torch.autograd.Function):

    @staticmethod
    def forward(ctx, weight: Tensor, mask: Tensor, decay: float) -> Tensor:
        ctx.save_for_backward(weight, mask)
        ctx.decay = decay
        return weight * mask

    @staticmethod
    def backward(ctx, grad: Tensor):
        weight, mask = ctx.saved_tensors
        return grad + ctx.decay * (~mask) * weight, None, None


def srste_weight(weight: Tensor, mask: Tensor, decay: float = 2e-4) -> Tensor:
    """The sparse weight ``W * M`` with SR-STE gradients for ``W``.

    Args:
        weight (Tensor): Dense weight (a parameter).
        mask (Tensor): Boolean 2:4 mask of the same shape.
        decay (float): Sparse-refined regularisation strength λ.
            Defaults to 2e-4 (the SR-STE paper's value).

    Returns:
        Tensor: ``weight * mask``.
    """
    return _SRSTE.apply(weight, mask.to(torch.bool), decay)

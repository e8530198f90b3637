"""SR-STE (Zhou et al., ICLR 2021): sparse forward, dense weights training.

The forward pass uses ``W * M``; the backward pass hands the dense weights
the gradient of the sparse ones unchanged (straight-through). The
sparse-refined term ``decay * (1 - M) * W``, which slowly pushes the pruned
weights towards zero so that recomputed masks settle, is *not* part of the
autograd graph: :func:`add_srste_decay` adds it to the gradients right
before the optimizer step (an optimizer step pre-hook), i.e. after a
GradScaler has unscaled them and after clipping, and once per optimizer
step whatever the gradient accumulation. Inside autograd it would be
divided by the loss scale and added once per accumulated micro-batch.
"""
from typing import Dict

import torch
from torch import Tensor, nn


class _SRSTE(torch.autograd.Function):

    @staticmethod
    def forward(ctx, weight: Tensor, mask: Tensor) -> Tensor:
        return weight * mask

    @staticmethod
    def backward(ctx, grad: Tensor):
        return grad, None


def srste_weight(weight: Tensor, mask: Tensor) -> Tensor:
    """The sparse weight ``W * M`` with a straight-through gradient for the
    dense ``W``.

    Args:
        weight (Tensor): Dense weight (a parameter).
        mask (Tensor): Boolean 2:4 mask of the same shape.

    Returns:
        Tensor: ``weight * mask``.
    """
    return _SRSTE.apply(weight, mask.to(torch.bool))


@torch.no_grad()
def add_srste_decay(params: Dict[str, nn.Parameter],
                    masks: Dict[str, Tensor], decay: float) -> None:
    """Add SR-STE's ``decay * (1 - M) * W`` to the gradients in place.

    Meant to run once per optimizer step, on unscaled gradients (see the
    module docstring). Weights without a gradient are left alone.

    Args:
        params (dict): ``{name: parameter}`` holding at least the masked
            weights.
        masks (dict): ``{name: bool mask}``.
        decay (float): λ of SR-STE.
    """
    for name, mask in masks.items():
        param = params.get(name)
        if param is None or param.grad is None:
            continue
        pruned = (~mask.to(param.device)).to(param.grad.dtype)
        param.grad.add_(param.detach().to(param.grad.dtype) * pruned,
                        alpha=decay)

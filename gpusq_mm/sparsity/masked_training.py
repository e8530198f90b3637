"""ASP-style training with fixed 2:4 masks, and the optimizer state.

With fixed masks (``magnitude``, ``permutation``, ``gradual``) the pruned
weights are exactly zero and must stay so. As NVIDIA's ASP does, their
gradients are zeroed as soon as autograd produces them (a tensor hook on
the parameter, so before DDP averages them, before a GradScaler unscales
them, before ``clip_grad`` measures their norm and before the optimizer
step), and the weights are re-zeroed after each step. When masking starts
from a trained optimizer (after iteration 0), the optimizer's running
moments of the pruned weights are reset to zero, otherwise Adam's momentum
would keep moving weights whose gradient is zero.

Optimizer state is handled generically: every state tensor with the
parameter's shape (Adam/AdamW ``exp_avg`` and ``exp_avg_sq``, SGD's
``momentum_buffer``, ...) is treated as per-element.
"""
from typing import Callable, Dict, Iterable, List

import torch
from torch import Tensor, nn
from torch.optim import Optimizer
from torch.utils.hooks import RemovableHandle


def register_grad_masks(params: Dict[str, nn.Parameter],
                        masks: Callable[[], Dict[str, Tensor]]
                        ) -> List[RemovableHandle]:
    """Zero the gradients of pruned weights as autograd produces them.

    Args:
        params (dict): ``{name: parameter}``.
        masks (Callable): Returns the current ``{name: bool mask}``; read at
            every backward pass, so recomputed masks take effect.

    Returns:
        list[RemovableHandle]: One handle per masked parameter.
    """
    handles = []
    for name in masks():
        handles.append(params[name].register_hook(_grad_mask(name, masks)))
    return handles


def _grad_mask(name: str, masks: Callable[[], Dict[str, Tensor]]):

    def hook(grad: Tensor) -> Tensor:
        mask = masks().get(name)
        if mask is None:
            return grad
        # masked_fill, not a product: an overflowed (inf) pruned gradient
        # must not turn into NaN
        return grad.masked_fill(~mask.to(grad.device), 0)

    return hook


def _param_states(optimizers: Iterable[Optimizer],
                  param: nn.Parameter) -> Iterable[Dict[str, Tensor]]:
    for optimizer in optimizers:
        state = optimizer.state.get(param)
        if state:
            yield state


@torch.no_grad()
def reset_pruned_state(optimizers: Iterable[Optimizer],
                       params: Dict[str, nn.Parameter],
                       masks: Dict[str, Tensor]) -> int:
    """Zero the optimizer state of pruned weights.

    Args:
        optimizers (Iterable[Optimizer]): The optimizers of the model.
        params (dict): ``{name: parameter}``.
        masks (dict): ``{name: bool mask}``.

    Returns:
        int: Number of state tensors changed.
    """
    optimizers = list(optimizers)
    changed = 0
    for name, mask in masks.items():
        param = params[name]
        for state in _param_states(optimizers, param):
            for value in state.values():
                if torch.is_tensor(value) and value.shape == param.shape:
                    value.masked_fill_(~mask.to(value.device), 0)
                    changed += 1
    return changed


@torch.no_grad()
def permute_state(optimizers: Iterable[Optimizer], param: nn.Parameter,
                  perm: Tensor, dim: int) -> None:
    """Reorder the optimizer state of ``param`` as ``param`` was reordered
    (``index_select(dim, perm)``), so moments stay on their channels.

    Args:
        optimizers (Iterable[Optimizer]): The optimizers of the model.
        param (nn.Parameter): The permuted parameter.
        perm (Tensor): The permutation applied to it.
        dim (int): The permuted dimension.
    """
    for state in _param_states(optimizers, param):
        for value in state.values():
            if torch.is_tensor(value) and value.shape == param.shape:
                value.copy_(value.index_select(dim, perm.to(value.device)))

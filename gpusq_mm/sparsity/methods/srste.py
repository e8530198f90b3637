"""``srste``: sparse forward, dense weights keep training (SR-STE)."""
from typing import Dict, Iterable, List, Optional

from torch import Tensor, nn
from torch.optim import Optimizer
from torch.utils.hooks import RemovableHandle

from ..srste import add_srste_decay, srste_weight
from .base import Masks, SparsityMethod


class SRSTEMethod(SparsityMethod):
    """The forward pass uses ``W * M`` while the dense ``W`` trains with
    straight-through gradients plus SR-STE's decay on the pruned weights;
    masks are recomputed from the dense weights every
    ``recompute_interval`` iterations; the weights become sparse for good
    at the end of training.

    Args:
        recompute_interval (int): Defaults to 100.
        srste_decay (float): SR-STE's λ. Defaults to 2e-4.
    """

    name = 'srste'
    keeps_dense_weights = True

    def __init__(self, recompute_interval: Optional[int] = 100,
                 srste_decay: float = 2e-4) -> None:
        super().__init__(100 if recompute_interval is None
                         else recompute_interval)
        self.srste_decay = srste_decay

    def zeroes_weights(self) -> bool:
        return False

    def attach(self, model: nn.Module, masks: Masks,
               optimizers: Iterable[Optimizer] = ()
               ) -> List[RemovableHandle]:
        """Forward passes use ``W * M`` (straight-through gradients), and a
        step pre-hook of every optimizer adds ``srste_decay * (1 - M) *
        W`` to the gradients."""
        handles = _sparse_forward(model, masks)
        params = dict(model.named_parameters())
        for optimizer in optimizers:
            owned = {id(p) for g in optimizer.param_groups
                     for p in g['params']}
            mine = {n: p for n, p in params.items() if id(p) in owned}
            handles.append(optimizer.register_step_pre_hook(
                lambda *_, mine=mine: add_srste_decay(
                    mine, masks(), self.srste_decay)))
        return handles

    def reset_state(self, model: nn.Module,
                    optimizers: Iterable[Optimizer],
                    masks: Dict[str, Tensor]) -> int:
        """Nothing: the pruned weights keep training."""
        return 0


def _sparse_forward(model: nn.Module, masks: Masks) -> List[RemovableHandle]:
    """Make forward passes of ``model`` use ``W * M``."""
    modules = dict(model.named_modules())
    by_module: Dict[str, List[str]] = {}
    for name in masks():
        owner, _, attr = name.rpartition('.')
        by_module.setdefault(owner, []).append(attr)
    handles = []
    for owner, attrs in by_module.items():
        pre, post = _swap_hooks(owner, attrs, masks)
        handles += [modules[owner].register_forward_pre_hook(pre),
                    modules[owner].register_forward_hook(post)]
    return handles


def _swap_hooks(owner: str, attrs: List[str], masks: Masks):
    saved: Dict[str, nn.Parameter] = {}
    prefix = f'{owner}.' if owner else ''

    def pre(module: nn.Module, _inputs) -> None:
        current = masks()
        for attr in attrs:
            param = module._parameters[attr]
            saved[attr] = param
            module._parameters[attr] = srste_weight(param,
                                                    current[prefix + attr])

    def post(module: nn.Module, _inputs, _output) -> None:
        for attr in attrs:
            module._parameters[attr] = saved.pop(attr)

    return pre, post

"""Sparsifier: the 2:4 state of one model, independent of any trainer.

Holds the masks of the eligible weights (keyed by parameter path) and
drives one 2:4 method (a strategy object of :mod:`.methods`):

- ``magnitude``: keep the 2 largest of every 4; masks fixed (or recomputed
  every ``recompute_interval`` iterations, which re-selects among the kept
  weights only: the pruned ones stay zero).
- ``permutation``: first reorder the input channels of feed-forward blocks
  (function unchanged, see :mod:`.permutation`), then magnitude.
- ``srste``: the forward pass uses ``W * M`` while the dense ``W`` keeps
  training with SR-STE gradients; masks are recomputed from the dense
  weights every ``recompute_interval`` iterations; ``harden`` makes the
  weights sparse for good.
- ``gradual``: the pruned fraction of groups ramps from 0 to 1 over
  ``ramp_iters`` iterations (cubic), then masks freeze.
"""
from typing import Callable, Dict, Iterable, List, Optional

import torch
from torch import Tensor, nn
from torch.optim import Optimizer

from gpusq_mm.utils.state_checks import check_resume

from .eligibility import LayerDecision, eligible_weights
from .gradual import gradual_mask
from .methods import METHODS, SparsityMethod, build_method
from .pattern import count_violations, kept_magnitude

__all__ = ['METHODS', 'Sparsifier']


class Sparsifier:
    """2:4 masks of a model's eligible weights.

    Args:
        method (str): A key of ``METHODS``. Defaults to 'magnitude'.
        recompute_interval (int, optional): Iterations between mask
            recomputations (``srste``: defaults to 100; ``gradual``: during
            the ramp, defaults to ``max(ramp_iters // 10, 1)``; otherwise
            None = fixed masks).
        ramp_iters (int): Length of the ``gradual`` ramp. Defaults to 1000.
        srste_decay (float): SR-STE's λ. Defaults to 2e-4.
        permutation_iters (int): Search rounds per feed-forward block.
            Defaults to 100.
    """

    def __init__(self,
                 method: str = 'magnitude',
                 recompute_interval: Optional[int] = None,
                 ramp_iters: int = 1000,
                 srste_decay: float = 2e-4,
                 permutation_iters: int = 100) -> None:
        self.strategy: SparsityMethod = build_method(
            method, recompute_interval=recompute_interval,
            ramp_iters=ramp_iters, srste_decay=srste_decay,
            permutation_iters=permutation_iters)
        self.masks: Dict[str, Tensor] = {}
        self.frozen = False
        self._handles: List = []

    @property
    def method(self) -> str:
        """The method's name."""
        return self.strategy.name

    @property
    def complete(self) -> bool:
        """Whether the masks are the full 2:4 pattern (a ramping method's
        are only once frozen)."""
        return not self.strategy.ramps or self.frozen

    @property
    def recompute_interval(self) -> Optional[int]:
        """Iterations between mask recomputations (None: fixed)."""
        return self.strategy.recompute_interval

    # ------------------------------------------------------------ masks
    @torch.no_grad()
    def compute(self, model: nn.Module, decisions: List[LayerDecision],
                step: int = 0) -> Dict[str, float]:
        """(Re)compute the masks ``step`` iterations after the start.

        Returns:
            dict: Kept magnitude per weight.
        """
        weights = eligible_weights(model, decisions)
        fraction = self.strategy.fraction(step)
        self.masks = {n: gradual_mask(w, fraction).to(w.device)
                      for n, w in weights.items()}
        self.frozen = self.strategy.final(step)
        return {n: kept_magnitude(w, self.masks[n])
                for n, w in weights.items()}

    def due(self, step: int) -> bool:
        """Whether masks are recomputed at ``step`` (iterations since the
        start; never once frozen)."""
        if self.frozen or step <= 0:
            return False
        return self.strategy.due(step)

    def prepare(self, models: List[nn.Module],
                decisions: List[LayerDecision],
                optimizers: Iterable[Optimizer] = ()) -> Optional[str]:
        """The method's one-off step before the first masks (e.g.
        ``permutation`` reorders channels of ``models`` and the state of
        ``optimizers``); returns what it did, for the log."""
        with torch.no_grad():
            return self.strategy.prepare(models, decisions, optimizers)

    @torch.no_grad()
    def apply(self, models: List[nn.Module]) -> None:
        """Zero the pruned weights (not for methods that train the dense
        weights, e.g. ``srste``, until :meth:`harden`)."""
        if not self.strategy.zeroes_weights():
            return
        for model in models:
            self._zero(model)

    @torch.no_grad()
    def _zero(self, model: nn.Module) -> None:
        params = dict(model.named_parameters())
        for name, mask in self.masks.items():
            weight = params[name]
            weight.mul_(mask.to(device=weight.device, dtype=weight.dtype))

    @torch.no_grad()
    def harden(self, models: List[nn.Module]) -> None:
        """Zero the pruned weights whatever the method."""
        for model in models:
            self._zero(model)

    def verify(self, model: nn.Module) -> Dict[str, int]:
        """``{weight: groups violating 2:4}`` of the masked weights."""
        params = dict(model.named_parameters())
        return {n: count_violations(params[n]) for n in self.masks}

    def sparse_weights(self, model: nn.Module) -> Dict[str, Tensor]:
        """The masked weights ``W * M`` (what a checkpoint stores)."""
        params = dict(model.named_parameters())
        return {n: params[n].detach() * self.masks[n] for n in self.masks}

    # ------------------------------------------------------- training
    def attach(self, model: nn.Module,
               optimizers: Iterable[Optimizer] = ()) -> None:
        """Hook the masks into training ``model`` with ``optimizers`` (see
        the method's ``attach``: gradients of pruned weights zeroed as they
        are produced, or SR-STE's sparse forward and decay). Idempotent
        (previous hooks are removed first).
        """
        self.detach()
        self._handles = self.strategy.attach(model, lambda: self.masks,
                                             optimizers)

    def reset_state(self, model: nn.Module,
                    optimizers: Iterable[Optimizer]) -> int:
        """Zero the optimizer moments of pruned weights (not for methods
        whose pruned weights keep training). Returns the number of state
        tensors changed."""
        return self.strategy.reset_state(model, optimizers, self.masks)

    def detach(self) -> None:
        """Remove every hook :meth:`attach` added."""
        for handle in self._handles:
            handle.remove()
        self._handles = []

    # ------------------------------------------------------------ state
    def state_dict(self) -> dict:
        return dict(method=self.method, frozen=self.frozen,
                    masks={k: v.cpu() for k, v in self.masks.items()})

    def load_state_dict(self, state: dict, model: nn.Module,
                        what: Callable[[str], str] = str,
                        owner: str = 'Sparsifier') -> None:
        """Restore masks, checking they fit ``model`` and this method.

        Args:
            state (dict): From :meth:`state_dict`.
            model (nn.Module): The model the masks belong to.
            what (Callable): Names a weight in messages. Defaults to str.
            owner (str): Who resumes, in messages. Defaults to
                'Sparsifier'.

        Raises:
            ValueError: A mask names a missing weight or has another shape,
                or the method differs (naming both).
        """
        params = dict(model.named_parameters())
        for name, mask in state['masks'].items():
            param = params.get(name)
            if param is None or tuple(param.shape) != tuple(mask.shape):
                got = None if param is None else tuple(param.shape)
                raise ValueError(
                    f'the checkpoint holds a 2:4 mask for {what(name)!r} of '
                    f'shape {tuple(mask.shape)} but the model has {got}; '
                    'the checkpoint belongs to another model (check the '
                    'config and the checkpoint path)')
        check_resume(owner, 'method', state.get('method', self.method),
                     self.method)
        self.masks = {k: v.to(device=params[k].device, dtype=torch.bool)
                      for k, v in state['masks'].items()}
        self.frozen = bool(state.get('frozen', False))

"""Sparsifier: the 2:4 state of one model, independent of any trainer.

Holds the masks of the eligible weights (keyed by parameter path) and
implements the four methods:

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

from .eligibility import LayerDecision, eligible_weights
from .gradual import gradual_fraction, gradual_mask
from .masked_training import register_grad_masks, reset_pruned_state
from .pattern import count_violations, kept_magnitude, magnitude_mask
from .permutation import apply_permutation, find_ffn_pairs, search_permutation
from .srste import add_srste_decay, srste_weight

METHODS = ('magnitude', 'permutation', 'srste', 'gradual')


class Sparsifier:
    """2:4 masks of a model's eligible weights.

    Args:
        method (str): One of ``METHODS``. Defaults to 'magnitude'.
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
        if method not in METHODS:
            raise ValueError(f'unknown 2:4 method {method!r}; choose one of '
                             f'{METHODS}')
        if recompute_interval is None:
            recompute_interval = dict(
                srste=100, gradual=max(ramp_iters // 10, 1)).get(method)
        self.method = method
        self.recompute_interval = recompute_interval
        self.ramp_iters = ramp_iters
        self.srste_decay = srste_decay
        self.permutation_iters = permutation_iters
        self.masks: Dict[str, Tensor] = {}
        self.frozen = False
        self._handles: List = []

    # ------------------------------------------------------------ masks
    @torch.no_grad()
    def compute(self, model: nn.Module, decisions: List[LayerDecision],
                step: int = 0) -> Dict[str, float]:
        """(Re)compute the masks ``step`` iterations after the start.

        Returns:
            dict: Kept magnitude per weight.
        """
        weights = eligible_weights(model, decisions)
        fraction = gradual_fraction(step, self.ramp_iters) \
            if self.method == 'gradual' else 1.0
        self.masks = {n: gradual_mask(w, fraction).to(w.device)
                      for n, w in weights.items()}
        self.frozen = self.method == 'gradual' and fraction >= 1.0
        return {n: kept_magnitude(w, self.masks[n])
                for n, w in weights.items()}

    def due(self, step: int) -> bool:
        """Whether masks are recomputed at ``step`` (iterations since the
        start; never once frozen)."""
        if self.frozen or not self.recompute_interval or step <= 0:
            return False
        if self.method == 'gradual' and step >= self.ramp_iters:
            return True  # the final, full 2:4 mask
        return step % self.recompute_interval == 0

    @torch.no_grad()
    def permute(self, models: List[nn.Module],
                decisions: List[LayerDecision],
                optimizers: Iterable[Optimizer] = ()) -> Dict[str, float]:
        """Permute feed-forward blocks whose consumer weight is eligible.

        The order is searched on ``models[0]`` and applied to every model
        (e.g. averaged copies of it), so they stay comparable; the state of
        ``optimizers`` (which train ``models[0]``) is permuted alike.

        Returns:
            dict: ``{consumer: kept magnitude gain}`` (after - before).
        """
        eligible = {d.name for d in decisions if d.eligible}
        params = dict(models[0].named_parameters())
        gains = {}
        for seed, pair in enumerate(find_ffn_pairs(models[0])):
            if pair.consumer not in eligible:
                continue
            weight = params[pair.consumer]
            before = kept_magnitude(weight, magnitude_mask(weight))
            perm = search_permutation(weight, self.permutation_iters, seed)
            apply_permutation(models[0], pair, perm, optimizers)
            for model in models[1:]:
                apply_permutation(model, pair, perm)
            gains[pair.consumer] = kept_magnitude(
                weight, magnitude_mask(weight)) - before
        return gains

    @torch.no_grad()
    def apply(self, models: List[nn.Module]) -> None:
        """Zero the pruned weights (not for ``srste``, whose dense weights
        keep training until :meth:`harden`)."""
        if self.method == 'srste':
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
        """Hook the masks into training ``model`` with ``optimizers``.

        ``srste``: forward passes use ``W * M`` with straight-through
        gradients, and a step pre-hook of every optimizer adds
        ``srste_decay * (1 - M) * W`` to the gradients. Other methods:
        gradients of pruned weights are zeroed as they are produced.
        Idempotent (previous hooks are removed first).
        """
        self.detach()
        params = dict(model.named_parameters())
        if self.method != 'srste':
            self._handles += register_grad_masks(params, lambda: self.masks)
            return
        self._attach_sparse_forward(model)
        for optimizer in optimizers:
            owned = {id(p) for g in optimizer.param_groups
                     for p in g['params']}
            mine = {n: p for n, p in params.items() if id(p) in owned}
            self._handles.append(optimizer.register_step_pre_hook(
                lambda *_, mine=mine: add_srste_decay(
                    mine, self.masks, self.srste_decay)))

    def reset_state(self, model: nn.Module,
                    optimizers: Iterable[Optimizer]) -> int:
        """Zero the optimizer moments of pruned weights (not for ``srste``,
        whose pruned weights keep training). Returns the number of state
        tensors changed."""
        if self.method == 'srste':
            return 0
        return reset_pruned_state(optimizers, dict(model.named_parameters()),
                                  self.masks)

    def _attach_sparse_forward(self, model: nn.Module) -> None:
        """Make forward passes use ``W * M`` (straight-through gradients)."""
        modules = dict(model.named_modules())
        by_module: Dict[str, List[str]] = {}
        for name in self.masks:
            owner, _, attr = name.rpartition('.')
            by_module.setdefault(owner, []).append(attr)
        for owner, attrs in by_module.items():
            module = modules[owner]
            pre, post = self._swap_hooks(owner, attrs)
            self._handles += [module.register_forward_pre_hook(pre),
                              module.register_forward_hook(post)]

    def _swap_hooks(self, owner: str, attrs: List[str]):
        saved: Dict[str, nn.Parameter] = {}
        prefix = f'{owner}.' if owner else ''

        def pre(module: nn.Module, _inputs) -> None:
            for attr in attrs:
                param = module._parameters[attr]
                saved[attr] = param
                module._parameters[attr] = srste_weight(
                    param, self.masks[prefix + attr])

        def post(module: nn.Module, _inputs, _output) -> None:
            for attr in attrs:
                module._parameters[attr] = saved.pop(attr)

        return pre, post

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
                        what: Callable[[str], str] = str) -> None:
        """Restore masks, checking they fit ``model``.

        Raises:
            ValueError: A mask names a missing weight or has another shape.
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
        if state.get('method', self.method) != self.method:
            raise ValueError(f"the checkpoint's 2:4 method is "
                             f"{state['method']!r} but the hook's is "
                             f'{self.method!r}; use the same method to resume')
        self.masks = {k: v.to(device=params[k].device, dtype=torch.bool)
                      for k, v in state['masks'].items()}
        self.frozen = bool(state.get('frozen', False))

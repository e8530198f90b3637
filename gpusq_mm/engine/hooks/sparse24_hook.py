"""Sparse24Hook: prune the student to the 2:4 pattern and keep it there."""
from typing import Dict, List, Optional, Sequence, Union

import torch
from mmengine.dist import broadcast, get_world_size
from mmengine.hooks import Hook
from mmengine.logging import print_log
from torch import nn

from gpusq_mm.checkpoint_format import (SPARSE_KEY, CheckpointFormatError,
                                        update_distill_meta, update_gpusq_meta)
from gpusq_mm.engine.checks import check_masked_weights_zero
from gpusq_mm.registry import register_hook
from gpusq_mm.sparsity import LayerDecision, find_layers
from gpusq_mm.sparsity.sparsifier import Sparsifier
from gpusq_mm.utils import get_student, student_prefix
from gpusq_mm.utils.scope import check_scope, resolve_scope

from .phase_start import PhaseStart


@register_hook
class Sparse24Hook(Hook):
    """Apply 2:4 fine-grained structured sparsity during training.

    Masks are computed on every eligible weight of the student in
    ``scope`` (Linear, Conv2d and attention input projections; see
    :func:`gpusq_mm.sparsity.find_layers`) when the schedule reaches
    ``start_iter``/``start_epoch``, enforced after every training iteration
    (also in ``EMAHook``'s averaged copy), broadcast from rank 0 so every DDP
    rank holds the same masks, stored in checkpoints and restored before the
    weights load on ``--resume``. Inside ``MixedKDDistiller`` only the
    student is pruned. Training is ASP-style: gradients of pruned weights
    are zeroed as autograd produces them (before ``clip_grad`` and the
    optimizer step, AMP-safe), the optimizer moments of pruned weights are
    reset when masks are computed, ``permutation`` permutes the optimizer
    state with the weights; ``srste`` keeps dense gradients and adds its
    decay in an optimizer step pre-hook (see
    :mod:`gpusq_mm.sparsity.methods`).

    Note:
        The priority is ``'ABOVE_NORMAL'`` so that masks are re-applied in
        ``after_train_iter`` before ``EMAHook`` (``'NORMAL'``) averages.

    Args:
        method (str): 'magnitude', 'permutation' (feed-forward input
            channels reordered first, function unchanged), 'srste' or
            'gradual'. See :class:`gpusq_mm.sparsity.sparsifier.Sparsifier`.
            Defaults to 'magnitude'.
        start_iter (int | float, optional): Iteration at which masks are
            computed. A float in [0, 1) is a fraction of ``max_iters``.
            Defaults to None (start of training unless ``start_epoch``).
        start_epoch (int | float, optional): Epoch at which masks are computed
            (epoch-based loops). Defaults to None.
        scope (str): 'backbone' (the paper's choice), 'backbone+neck' or
            'all'; a model without ``backbone`` uses 'all' (logged).
            Defaults to 'backbone'.
        prune_patch_embed (bool): Also prune patch embeddings and patch
            merging layers. Defaults to False.
        include (Sequence[str], optional): Regexes of parameter paths to
            prune (within ``scope``); None prunes every eligible weight.
            Defaults to None.
        exclude (Sequence[str], optional): Regexes of parameter paths to
            keep dense. Defaults to None.
        min_channels (int): Smallest channel count worth pruning.
            Defaults to 32.
        recompute_interval (int, optional): Iterations between mask
            recomputations; method-dependent default (see ``Sparsifier``).
        ramp_iters (int): Ramp length of 'gradual'. Defaults to 1000.
        srste_decay (float): SR-STE's λ. Defaults to 2e-4.
        permutation_iters (int): Search rounds per block. Defaults to 100.
        log_table (bool): Log the table of pruned and skipped weights with
            reasons. Defaults to True.

    Examples:
        >>> custom_hooks = [dict(type='Sparse24Hook', method='permutation',
        ...                      scope='backbone+neck')]
    """

    priority = 'ABOVE_NORMAL'

    def __init__(self,
                 method: str = 'magnitude',
                 start_iter: Optional[Union[int, float]] = None,
                 start_epoch: Optional[Union[int, float]] = None,
                 scope: str = 'backbone',
                 prune_patch_embed: bool = False,
                 include: Optional[Sequence[str]] = None,
                 exclude: Optional[Sequence[str]] = None,
                 min_channels: int = 32,
                 recompute_interval: Optional[int] = None,
                 ramp_iters: int = 1000,
                 srste_decay: float = 2e-4,
                 permutation_iters: int = 100,
                 log_table: bool = True) -> None:
        for name, value in (('recompute_interval', recompute_interval),
                            ('ramp_iters', ramp_iters)):
            if value is not None and (not isinstance(value, int)
                                      or value < 1):
                raise ValueError(f'Sparse24Hook: {name} must be a positive '
                                 f'int, got {value!r}')
        check_scope(scope, 'Sparse24Hook')
        self.start = PhaseStart('Sparse24Hook', start_iter, start_epoch)
        self.scope = scope
        self.prune_patch_embed = prune_patch_embed
        try:
            self.sparsifier = Sparsifier(method, recompute_interval,
                                         ramp_iters, srste_decay,
                                         permutation_iters)
        except ValueError as err:
            raise ValueError(f'Sparse24Hook: {err}') from None
        self.include = list(include) if include else None
        self.exclude = list(exclude) if exclude else None
        self.min_channels = min_channels
        self.log_table = log_table
        self.started_at: Optional[int] = None
        self.decisions: List[LayerDecision] = []
        self._dense: Dict[str, torch.Tensor] = {}

    @property
    def masks(self) -> Dict[str, torch.Tensor]:
        """``{parameter path: bool mask}`` of the student."""
        return self.sparsifier.masks

    # ----------------------------------------------------------- stages
    def before_train(self, runner) -> None:
        self.start.check_within(runner)
        student = get_student(runner.model)
        self.scope, note = resolve_scope(student, self.scope)
        if note:
            print_log(f'Sparse24Hook: {note}', logger='current')
        self.decisions = find_layers(student, self.include, self.exclude,
                                     self.min_channels, self.scope,
                                     not self.prune_patch_embed)
        if self.log_table:
            self._log_table()
        if self.started_at is not None:  # restored by after_load_checkpoint
            self._restore_dense(student)
            self.sparsifier.attach(student, _optimizers(runner))
            self._enforce(runner)
        elif self.start.due(runner):
            self._begin(runner)

    def before_train_iter(self, runner, batch_idx: int,
                          data_batch=None) -> None:
        if self.started_at is None and self.start.due(runner):
            self._begin(runner)

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs=None) -> None:
        if self.started_at is None:
            return
        step = runner.iter + 1 - self.started_at
        if self.sparsifier.due(step):
            self._compute(runner, step)
        self._enforce(runner)

    def after_train(self, runner) -> None:
        if self.started_at is not None:
            self.sparsifier.detach()
            self.sparsifier.harden(self._targets(runner))

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if self.started_at is None:
            return
        self._enforce(runner)  # before EMAHook swaps averaged weights in
        state = self.sparsifier.state_dict()
        state['started_at'] = self.started_at
        student = get_student(runner.model)
        if self.sparsifier.strategy.keeps_dense_weights:
            # the checkpoint's weights are the sparse ones; the dense ones
            # the method (SR-STE) keeps training are stored beside them
            prefix = student_prefix(runner.model)
            params = dict(student.named_parameters())
            state['dense'] = {n: params[n].detach().cpu()
                              for n in self.masks}
            for name, value in self.sparsifier.sparse_weights(
                    student).items():
                checkpoint['state_dict'][prefix + name] = value.cpu()
        checkpoint[SPARSE_KEY] = state
        update_gpusq_meta(
            checkpoint, 'sparsity',
            dict(pattern='2:4', method=self.sparsifier.method,
                 scope=self.scope,
                 complete=self.sparsifier.complete,
                 layers=sorted(self.masks)), phase='S')
        update_distill_meta(checkpoint, runner.model)

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        state = checkpoint.get(SPARSE_KEY)
        if state is None:
            return
        try:
            self.sparsifier.load_state_dict(state, get_student(runner.model),
                                            owner='Sparse24Hook')
            check_masked_weights_zero(checkpoint.get('state_dict', {}),
                                      state['masks'],
                                      student_prefix(runner.model))
        except CheckpointFormatError:
            raise  # names the hook already
        except ValueError as e:
            raise ValueError(f'Sparse24Hook: {e}') from None
        self.started_at = int(state['started_at'])
        self._dense = dict(state.get('dense', {}))

    # ----------------------------------------------------------- helpers
    def _begin(self, runner) -> None:
        student = get_student(runner.model)
        # e.g. permutation; averaged copies (EMAHook) are changed alike
        note = self.sparsifier.prepare(self._targets(runner), self.decisions,
                                       _optimizers(runner))
        if note:
            print_log(f'Sparse24Hook: {note}', logger='current')
        self.started_at = runner.iter
        self._compute(runner, 0)
        self.sparsifier.attach(student, _optimizers(runner))
        self._enforce(runner)

    def _compute(self, runner, step: int) -> None:
        kept = self.sparsifier.compute(get_student(runner.model),
                                       self.decisions, step)
        if get_world_size() > 1:
            for name, mask in self.masks.items():
                as_int = mask.to(torch.uint8)
                broadcast(as_int, src=0)
                self.masks[name] = as_int.to(torch.bool)
        # moments of newly pruned weights would move them again
        self.sparsifier.reset_state(get_student(runner.model),
                                    _optimizers(runner))
        kept_mean = sum(kept.values()) / max(len(kept), 1)
        pruned = sum(int((~m).sum()) for m in self.masks.values())
        total = sum(m.numel() for m in self.masks.values())
        hub = runner.message_hub
        hub.update_scalar('train/sparse24_kept_magnitude', kept_mean)
        hub.update_scalar('train/sparse24_sparsity', pruned / max(total, 1))
        print_log(f'Sparse24Hook: {len(self.masks)} weights masked 2:4 at '
                  f'iter {runner.iter} ({self.sparsifier.method}, step '
                  f'{step}); mean kept magnitude {kept_mean:.4f}',
                  logger='current')

    def _enforce(self, runner) -> None:
        targets = self._targets(runner)
        self.sparsifier.apply(targets[:1])
        self.sparsifier.harden(targets[1:])  # averaged copies

    def _restore_dense(self, student: nn.Module) -> None:
        if self._dense:
            params = dict(student.named_parameters())
            with torch.no_grad():
                for name, value in self._dense.items():
                    params[name].copy_(value)
            self._dense = {}

    @staticmethod
    def _targets(runner) -> List[nn.Module]:
        """The student and every averaged copy of it (``EMAHook``)."""
        targets = [get_student(runner.model)]
        for hook in runner.hooks:
            averaged = getattr(hook, 'ema_model', None)
            if isinstance(averaged, nn.Module) and hasattr(averaged, 'module'):
                targets.append(get_student(averaged.module))
        return targets

    def verify(self, runner) -> Dict[str, int]:
        """Return ``{weight: groups violating 2:4}`` for the masked weights."""
        return self.sparsifier.verify(get_student(runner.model))

    def _log_table(self) -> None:
        eligible = [d for d in self.decisions if d.eligible]
        lines = [f'Sparse24Hook: {len(eligible)} of {len(self.decisions)} '
                 f"GEMM/conv weights eligible for 2:4 (scope '{self.scope}')"]
        for d in self.decisions:
            status = 'prune' if d.eligible else f'skip: {d.reason}'
            lines.append(f'  {d.name:<64} {d.kind:<18} '
                         f'{str(d.shape):<22} {status}')
        print_log('\n'.join(lines), logger='current')



def _optimizers(runner) -> List[torch.optim.Optimizer]:
    """The torch optimizers of ``runner`` (none before they are built, e.g.
    when only testing)."""
    wrapper = getattr(runner, 'optim_wrapper', None)
    wrappers = getattr(wrapper, 'optim_wrappers', None)
    wrappers = list(wrappers.values()) if isinstance(wrappers, dict) \
        else [wrapper]
    return [w.optimizer for w in wrappers
            if isinstance(getattr(w, 'optimizer', None),
                          torch.optim.Optimizer)]

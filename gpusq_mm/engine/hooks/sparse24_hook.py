"""Sparse24Hook: prune the student to the 2:4 pattern and keep it there."""
from typing import Dict, List, Optional, Sequence

import torch
from mmengine.hooks import Hook
from mmengine.logging import print_log
from torch import nn

from gpusq_mm.registry import register_hook

from gpusq_mm.sparsity import (LayerDecision, count_violations,
                               eligible_modules, find_layers, kept_magnitude,
                               magnitude_mask)
from gpusq_mm.utils import get_student, update_gpusq_meta

from .phase_start import PhaseStart

CKPT_KEY = 'gpusq_sparse24'
METHODS = ('magnitude', )


@register_hook
class Sparse24Hook(Hook):
    """Apply 2:4 fine-grained structured sparsity during training.

    Masks are computed on every eligible Linear/Conv2d of the student (see
    :func:`gpusq_mm.sparsity.find_layers`) when the schedule reaches
    ``start_iter``/``start_epoch``, re-applied after every training
    iteration, stored in checkpoints and restored before the weights load on
    ``--resume``.

    Note:
        The priority is ``'ABOVE_NORMAL'`` so that masks are re-applied in
        ``after_train_iter`` before ``EMAHook`` (``'NORMAL'``) averages.

    Args:
        method (str): Mask method. Defaults to 'magnitude'.
        start_iter (int, optional): Iteration at which masks are computed.
            Defaults to None (start of training unless ``start_epoch``).
        start_epoch (int, optional): Epoch at which masks are computed
            (epoch-based loops). Defaults to None.
        include (Sequence[str], optional): Regexes of module names to prune;
            None prunes every eligible layer. Defaults to None.
        exclude (Sequence[str], optional): Regexes of module names to keep
            dense. Defaults to None.
        min_channels (int): Smallest channel count worth pruning.
            Defaults to 32.
        recompute_interval (int, optional): Recompute masks from the current
            weights every this many iterations; None freezes them.
            Defaults to None.

    Examples:
        >>> custom_hooks = [dict(type='Sparse24Hook', start_iter=0,
        ...                      exclude=[r'patch_embed'])]
    """

    priority = 'ABOVE_NORMAL'

    def __init__(self,
                 method: str = 'magnitude',
                 start_iter: Optional[int] = None,
                 start_epoch: Optional[int] = None,
                 include: Optional[Sequence[str]] = None,
                 exclude: Optional[Sequence[str]] = None,
                 min_channels: int = 32,
                 recompute_interval: Optional[int] = None) -> None:
        if method not in METHODS:
            raise ValueError(f'Sparse24Hook: unknown method {method!r}; '
                             f'choose one of {METHODS}')
        if recompute_interval is not None and (
                not isinstance(recompute_interval, int)
                or recompute_interval < 1):
            raise ValueError(f'Sparse24Hook: recompute_interval must be a '
                             f'positive int, got {recompute_interval!r}')
        self.start = PhaseStart('Sparse24Hook', start_iter, start_epoch)
        self.method = method
        self.include = list(include) if include else None
        self.exclude = list(exclude) if exclude else None
        self.min_channels = min_channels
        self.recompute_interval = recompute_interval
        self.masks: Dict[str, torch.Tensor] = {}
        self.decisions: List[LayerDecision] = []

    # ----------------------------------------------------------- stages
    def before_train(self, runner) -> None:
        self.start.check_within(runner)
        student = get_student(runner.model)
        self.decisions = find_layers(student, self.include, self.exclude,
                                     self.min_channels)
        self._log_table(runner)
        if self.masks:  # restored by after_load_checkpoint
            self._apply(runner)
        elif self.start.due(runner):
            self._compute(runner, student)

    def before_train_iter(self, runner, batch_idx: int,
                          data_batch=None) -> None:
        if not self.masks and self.start.due(runner):
            self._compute(runner, get_student(runner.model))

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs=None) -> None:
        if not self.masks:
            return
        if (self.recompute_interval
                and self.every_n_train_iters(runner, self.recompute_interval)):
            self._compute(runner, get_student(runner.model))
        else:
            self._apply(runner)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if not self.masks:
            return
        # runs before EMAHook swaps the averaged weights into the state dict
        self._apply(runner)
        checkpoint[CKPT_KEY] = dict(
            method=self.method,
            masks={k: v.cpu() for k, v in self.masks.items()})
        update_gpusq_meta(
            checkpoint, 'sparsity',
            dict(pattern='2:4', method=self.method,
                 layers=sorted(self.masks)), phase='S')

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        state = checkpoint.get(CKPT_KEY)
        if state is None:
            return
        student = get_student(runner.model)
        modules = dict(student.named_modules())
        for name, mask in state['masks'].items():
            module = modules.get(name)
            if module is None or tuple(module.weight.shape) != tuple(
                    mask.shape):
                got = None if module is None else tuple(module.weight.shape)
                raise ValueError(
                    f'Sparse24Hook: the checkpoint holds a 2:4 mask for '
                    f'layer {name!r} of shape {tuple(mask.shape)} but the '
                    f'model has {got}; the checkpoint belongs to another '
                    'model (check the config and the checkpoint path)')
        self.masks = {k: v.to(torch.bool) for k, v in state['masks'].items()}

    # ----------------------------------------------------------- helpers
    def _compute(self, runner, student: nn.Module) -> None:
        modules = eligible_modules(student, self.decisions)
        self.masks = {
            name: magnitude_mask(m.weight).to(m.weight.device)
            for name, m in modules.items()
        }
        kept = [kept_magnitude(m.weight, self.masks[n])
                for n, m in modules.items()]
        self._apply(runner)
        kept_mean = sum(kept) / max(len(kept), 1)
        runner.message_hub.update_scalar('train/sparse24_kept_magnitude',
                                         kept_mean)
        print_log(f'Sparse24Hook: {len(self.masks)} layers pruned to 2:4 at '
                  f'iter {runner.iter} ({self.method}); mean kept magnitude '
                  f'{kept_mean:.4f}', logger='current')

    @torch.no_grad()
    def _apply(self, runner) -> None:
        """Zero the pruned weights of the student and of every averaged
        copy (``EMAHook``) so that the averaged weights are 2:4 as well."""
        for student in self._targets(runner):
            modules = dict(student.named_modules())
            for name, mask in self.masks.items():
                weight = modules[name].weight
                weight.mul_(mask.to(device=weight.device, dtype=weight.dtype))

    @staticmethod
    def _targets(runner) -> List[nn.Module]:
        targets = [get_student(runner.model)]
        for hook in runner.hooks:
            averaged = getattr(hook, 'ema_model', None)
            if isinstance(averaged, nn.Module) and hasattr(averaged, 'module'):
                targets.append(get_student(averaged.module))
        return targets

    def verify(self, runner) -> Dict[str, int]:
        """Return ``{layer: groups violating 2:4}`` for the masked layers."""
        modules = dict(get_student(runner.model).named_modules())
        return {n: count_violations(modules[n].weight) for n in self.masks}

    def _log_table(self, runner) -> None:
        eligible = [d for d in self.decisions if d.eligible]
        lines = [f'Sparse24Hook: {len(eligible)} of {len(self.decisions)} '
                 'Linear/Conv2d layers eligible for 2:4']
        for d in self.decisions:
            status = 'prune' if d.eligible else f'skip: {d.reason}'
            lines.append(f'  {d.name:<60} {d.kind:<7} '
                         f'{str(d.shape):<22} {status}')
        print_log('\n'.join(lines), logger='current')

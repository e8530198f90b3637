"""RNGStateHook: save the random generators in checkpoints, restore them on
``--resume`` so the resumed run continues the uninterrupted run's stream."""
import logging
from typing import Any, Dict, Iterator, List, Optional

from mmengine.dist import all_gather_object, get_rank, get_world_size
from mmengine.hooks import Hook
from mmengine.logging import print_log

from gpusq_mm.checkpoint_format import RNG_KEY
from gpusq_mm.engine.checks import check_resumable, check_train_data
from gpusq_mm.registry import register_hook
from gpusq_mm.utils.rng import get_rng_state, set_rng_state


@register_hook
class RNGStateHook(Hook):
    """Store Python, NumPy, torch and CUDA generator states in every
    checkpoint (key ``'gpusq_rng'``) and restore them when resuming.

    With ``randomness=dict(seed=..., deterministic=True)`` and
    ``num_workers=0`` a run resumed from ``iter_k.pth`` then computes the
    same iteration ``k + 1`` (same augmentations, same RoI samples, same
    loss) as the run that was never interrupted.

    Note:
        ``IterBasedTrainLoop`` re-positions the data loader on resume by
        drawing ``k`` batches (its seeded sampler replays the same order),
        which runs the data pipeline and its random transforms. The hook
        therefore restores the generators right before batch ``k + 1`` is
        drawn, not in ``after_load_checkpoint``. Epoch-based loops restore
        in ``before_train`` (MMEngine resumes them at an epoch boundary).
        With several ranks, every rank's state is gathered after each
        iteration (one small ``all_gather_object``) and each rank gets its
        own back; a resume with another world size restores rank 0's state
        on all ranks and warns.

        The hook also stops two mistakes early with a clear message:
        ``--resume`` from a weights-only file (no ``meta``), and an empty
        training set.

    Examples:
        >>> custom_hooks = [dict(type='Sparse24Hook'),
        ...                 dict(type='QATHook', start_iter=1000),
        ...                 dict(type='RNGStateHook')]
    """

    priority = 'LOW'  # after_train_iter before CheckpointHook (VERY_LOW)

    def __init__(self) -> None:
        self._pending: Optional[Dict[str, Any]] = None
        self._ranks: Optional[List[Dict[str, Any]]] = None

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs=None) -> None:
        if get_world_size() > 1:
            self._ranks = all_gather_object(get_rng_state())

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        states = self._ranks if get_world_size() > 1 and self._ranks else \
            [get_rng_state()]
        checkpoint[RNG_KEY] = dict(ranks=states, iter=runner.iter)

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        if not getattr(runner, '_resume', False):
            return  # load_from (fine-tuning) keeps the seeded stream
        check_resumable(checkpoint, repr(runner._load_from or 'the latest '
                                         'checkpoint'))
        saved = checkpoint.get(RNG_KEY)
        if saved is None:
            return
        states = saved['ranks']
        rank = get_rank()
        if len(states) != get_world_size():
            print_log(f'RNGStateHook: the checkpoint holds generator states '
                      f'of {len(states)} rank(s), this run has '
                      f'{get_world_size()}; every rank restores rank 0\'s',
                      logger='current', level=logging.WARNING)
            rank = 0
        self._pending = states[rank]

    def before_train(self, runner) -> None:
        check_train_data(runner)
        if self._pending is None:
            return
        loop = runner.train_loop
        if hasattr(loop, 'dataloader_iterator'):  # IterBasedTrainLoop
            loop.dataloader_iterator = _RestoreAfterSkip(
                loop, loop.dataloader_iterator, runner.iter, self._pending)
        else:
            set_rng_state(self._pending)
        self._pending = None


class _RestoreAfterSkip:
    """Wraps the loop's data iterator: lets the loop's ``skip`` batches pass,
    restores the generators right before the next batch is drawn and puts
    the original iterator back."""

    def __init__(self, loop, inner: Iterator, skip: int,
                 state: Dict[str, Any]) -> None:
        self.loop, self.inner = loop, inner
        self.skip, self.state = skip, state

    def __iter__(self) -> '_RestoreAfterSkip':
        return self

    def __next__(self) -> Any:
        if self.skip > 0:
            self.skip -= 1
            return next(self.inner)
        set_rng_state(self.state)
        self.loop.dataloader_iterator = self.inner
        return next(self.inner)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

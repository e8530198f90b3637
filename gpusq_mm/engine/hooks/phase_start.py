"""When a GPUSQ phase starts: ``start_iter`` or ``start_epoch``.

Each may be an absolute position (a non-negative ``int``) or a fraction of
the schedule (a ``float`` in ``[0, 1)``): ``start_epoch=0.5`` starts the
phase at epoch ``int(0.5 * max_epochs)``, ``start_iter=0.5`` at iteration
``int(0.5 * max_iters)`` (``max_iters`` of an epoch-based loop is
``max_epochs * len(train_dataloader)``). Fractions let one config fragment
serve every schedule length, also when ``--cfg-options`` changes it.
"""
from typing import Optional, Union

Position = Union[int, float]


class PhaseStart:
    """The start of a phase, validated once, shared by the GPUSQ hooks.

    Args:
        owner (str): Hook name used in error messages.
        start_iter (int | float, optional): Iteration at which the phase
            starts, or a fraction in ``[0, 1)`` of ``max_iters``.
        start_epoch (int | float, optional): Epoch at which the phase starts
            (epoch-based loops), or a fraction in ``[0, 1)`` of
            ``max_epochs``. With neither, the phase starts with training.

    Examples:
        >>> PhaseStart('QATHook', None, 0.5)  # half-way through the epochs
    """

    def __init__(self, owner: str, start_iter: Optional[Position],
                 start_epoch: Optional[Position]) -> None:
        if start_iter is not None and start_epoch is not None:
            raise ValueError(f'{owner}: give start_iter or start_epoch, not '
                             'both')
        for name, value in (('start_iter', start_iter),
                            ('start_epoch', start_epoch)):
            if value is not None and not _valid(value):
                raise ValueError(
                    f'{owner}: {name} must be a non-negative int (a '
                    'position) or a float in [0, 1) (a fraction of the '
                    f'schedule), got {value!r}')
        self.owner = owner
        self.start_iter = start_iter
        self.start_epoch = start_epoch

    def resolve(self, runner) -> None:
        """Turn a fractional start into a position of ``runner``'s
        schedule (once; a no-op for absolute starts)."""
        if isinstance(self.start_epoch, float):
            self.start_epoch = int(self.start_epoch * runner.max_epochs)
        if isinstance(self.start_iter, float):
            self.start_iter = int(self.start_iter * runner.max_iters)

    def due(self, runner) -> bool:
        """Whether the phase has started at the runner's position."""
        self.resolve(runner)
        if self.start_epoch is not None:
            return runner.epoch >= self.start_epoch
        return runner.iter >= (self.start_iter or 0)

    def check_within(self, runner) -> None:
        """Raise if the start lies past the end of the schedule."""
        self.resolve(runner)
        if self.start_epoch is not None and \
                self.start_epoch >= runner.max_epochs:
            raise ValueError(f'{self.owner}: start_epoch={self.start_epoch} '
                             f'is past the schedule (max_epochs='
                             f'{runner.max_epochs})')
        if self.start_iter is not None and \
                self.start_iter >= runner.max_iters:
            raise ValueError(f'{self.owner}: start_iter={self.start_iter} '
                             f'is past the schedule (max_iters='
                             f'{runner.max_iters})')


def _valid(value: Position) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return value >= 0
    return isinstance(value, float) and 0.0 <= value < 1.0

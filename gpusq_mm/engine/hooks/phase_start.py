"""When a GPUSQ phase starts: ``start_iter`` or ``start_epoch``."""
from typing import Optional


class PhaseStart:
    """The start of a phase, validated once, shared by the GPUSQ hooks.

    Args:
        owner (str): Hook name used in error messages.
        start_iter (int, optional): Iteration at which the phase starts.
        start_epoch (int, optional): Epoch at which the phase starts
            (epoch-based loops). With neither, the phase starts with
            training.
    """

    def __init__(self, owner: str, start_iter: Optional[int],
                 start_epoch: Optional[int]) -> None:
        if start_iter is not None and start_epoch is not None:
            raise ValueError(f'{owner}: give start_iter or start_epoch, not '
                             'both')
        for name, value in (('start_iter', start_iter),
                            ('start_epoch', start_epoch)):
            if value is not None and (not isinstance(value, int)
                                      or value < 0):
                raise ValueError(f'{owner}: {name} must be a non-negative '
                                 f'int, got {value!r}')
        self.owner = owner
        self.start_iter = start_iter
        self.start_epoch = start_epoch

    def due(self, runner) -> bool:
        """Whether the phase has started at the runner's position."""
        if self.start_epoch is not None:
            return runner.epoch >= self.start_epoch
        return runner.iter >= (self.start_iter or 0)

    def check_within(self, runner) -> None:
        """Raise if the start lies past the end of the schedule."""
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

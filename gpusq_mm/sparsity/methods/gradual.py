"""``gradual``: the pruned fraction of groups ramps up, then masks freeze."""
from typing import Optional

from ..gradual import gradual_fraction
from .base import SparsityMethod


class GradualMethod(SparsityMethod):
    """The pruned fraction of groups ramps from 0 to 1 over ``ramp_iters``
    iterations (cubic, :func:`gpusq_mm.sparsity.gradual_fraction`),
    recomputed every ``recompute_interval`` iterations; at the end of the
    ramp the masks are full 2:4 and freeze.

    Args:
        recompute_interval (int, optional): During the ramp. Defaults to
            ``max(ramp_iters // 10, 1)``.
        ramp_iters (int): Ramp length. Defaults to 1000.
    """

    name = 'gradual'
    ramps = True

    def __init__(self, recompute_interval: Optional[int] = None,
                 ramp_iters: int = 1000) -> None:
        super().__init__(max(ramp_iters // 10, 1)
                         if recompute_interval is None
                         else recompute_interval)
        self.ramp_iters = ramp_iters

    def fraction(self, step: int) -> float:
        return gradual_fraction(step, self.ramp_iters)

    def final(self, step: int) -> bool:
        return self.fraction(step) >= 1.0

    def due(self, step: int) -> bool:
        if step >= self.ramp_iters:
            return True  # the final, full 2:4 mask
        return super().due(step)

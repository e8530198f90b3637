"""The interface every 2:4 method implements."""
from typing import Callable, Dict, Iterable, List, Optional

from torch import Tensor, nn
from torch.optim import Optimizer
from torch.utils.hooks import RemovableHandle

from ..eligibility import LayerDecision
from ..masked_training import register_grad_masks, reset_pruned_state

Masks = Callable[[], Dict[str, Tensor]]


class SparsityMethod:
    """How masks are chosen, when they change and how training keeps them.

    The default behaviour is that of fixed magnitude masks trained the ASP
    way: full 2:4 from the first mask, pruned weights zeroed after every
    step, their gradients zeroed as autograd produces them and their
    optimizer moments reset when masks change.

    Args:
        recompute_interval (int, optional): Iterations between mask
            recomputations; None keeps the masks fixed. Defaults to None.

    Attributes:
        name (str): The method's key in ``METHODS``.
        keeps_dense_weights (bool): Training keeps the dense weights (the
            checkpoint stores them beside the sparse ones for resuming).
        ramps (bool): Masks start partial and reach full 2:4 later.
    """

    name = ''
    keeps_dense_weights = False
    ramps = False

    def __init__(self, recompute_interval: Optional[int] = None) -> None:
        self.recompute_interval = recompute_interval

    def prepare(self, models: List[nn.Module],
                decisions: List[LayerDecision],
                optimizers: Iterable[Optimizer] = ()) -> Optional[str]:
        """Once, before the first masks (e.g. reorder channels).

        Returns:
            str | None: What was done, for the log.
        """
        return None

    def fraction(self, step: int) -> float:
        """Fraction of the groups of 4 pruned ``step`` iterations after the
        start."""
        return 1.0

    def final(self, step: int) -> bool:
        """Whether the masks computed at ``step`` never change again."""
        return False

    def due(self, step: int) -> bool:
        """Whether masks are recomputed at ``step`` (> 0)."""
        return bool(self.recompute_interval) and \
            step % self.recompute_interval == 0

    def zeroes_weights(self) -> bool:
        """Whether the pruned weights are zeroed during training (else only
        at the end, :meth:`Sparsifier.harden`)."""
        return True

    def attach(self, model: nn.Module, masks: Masks,
               optimizers: Iterable[Optimizer] = ()
               ) -> List[RemovableHandle]:
        """Hook the masks into training ``model``; returns the handles."""
        return register_grad_masks(dict(model.named_parameters()), masks)

    def reset_state(self, model: nn.Module,
                    optimizers: Iterable[Optimizer],
                    masks: Dict[str, Tensor]) -> int:
        """Zero the optimizer moments of pruned weights; returns the
        number of state tensors changed."""
        return reset_pruned_state(optimizers, dict(model.named_parameters()),
                                  masks)

"""``permutation``: reorder input channels first, then magnitude."""
from typing import Iterable, List, Optional

from torch import nn
from torch.optim import Optimizer

from ..eligibility import LayerDecision
from ..pattern import kept_magnitude, magnitude_mask
from ..permutation import apply_permutation, find_ffn_pairs, search_permutation
from .magnitude import MagnitudeMethod


class PermutationMethod(MagnitudeMethod):
    """Permute the hidden channels of feed-forward blocks (function
    unchanged, see :mod:`gpusq_mm.sparsity.permutation`) so that magnitude
    2:4 keeps more, then prune as ``magnitude``.

    Args:
        recompute_interval (int, optional): As ``magnitude``.
        permutation_iters (int): Search rounds per block. Defaults to 100.
    """

    name = 'permutation'

    def __init__(self, recompute_interval: Optional[int] = None,
                 permutation_iters: int = 100) -> None:
        super().__init__(recompute_interval)
        self.permutation_iters = permutation_iters
        self.gains = {}

    def prepare(self, models: List[nn.Module],
                decisions: List[LayerDecision],
                optimizers: Iterable[Optimizer] = ()) -> str:
        """Search the order on ``models[0]`` and apply it to every model
        (averaged copies stay comparable) and to the state of
        ``optimizers`` (which train ``models[0]``); ``gains`` holds
        ``{consumer: kept magnitude after - before}``."""
        eligible = {d.name for d in decisions if d.eligible}
        params = dict(models[0].named_parameters())
        self.gains = {}
        for seed, pair in enumerate(find_ffn_pairs(models[0])):
            if pair.consumer not in eligible:
                continue
            weight = params[pair.consumer]
            before = kept_magnitude(weight, magnitude_mask(weight))
            perm = search_permutation(weight, self.permutation_iters, seed)
            apply_permutation(models[0], pair, perm, optimizers)
            for model in models[1:]:
                apply_permutation(model, pair, perm)
            self.gains[pair.consumer] = kept_magnitude(
                weight, magnitude_mask(weight)) - before
        mean = sum(self.gains.values()) / max(len(self.gains), 1)
        return (f'permuted {len(self.gains)} feed-forward blocks; kept '
                f'magnitude +{mean:.4f} on average')

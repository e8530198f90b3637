"""``magnitude``: keep the 2 largest of every 4."""
from .base import SparsityMethod


class MagnitudeMethod(SparsityMethod):
    """Magnitude 2:4 masks, fixed (or recomputed every
    ``recompute_interval`` iterations, which re-selects among the kept
    weights only: the pruned ones stay zero)."""

    name = 'magnitude'

"""Models: the distiller, its losses and feature recording."""
from .distillers import MixedKDDistiller
from .recorder import record_outputs

__all__ = ['MixedKDDistiller', 'record_outputs']

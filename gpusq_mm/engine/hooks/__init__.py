from .qat_hook import QATHook
from .rng_state_hook import RNGStateHook
from .sparse24_hook import Sparse24Hook

__all__ = ['QATHook', 'RNGStateHook', 'Sparse24Hook']

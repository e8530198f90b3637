from .qat_hook import QATHook
from .sparse24_hook import Sparse24Hook

__all__ = ['QATHook', 'Sparse24Hook']

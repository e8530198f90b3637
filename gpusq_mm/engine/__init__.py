from .hooks import QATHook, RNGStateHook, Sparse24Hook

__all__ = ['QATHook', 'RNGStateHook', 'Sparse24Hook']

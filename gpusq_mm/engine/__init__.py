from .hooks import QATHook, Sparse24Hook

__all__ = ['QATHook', 'Sparse24Hook']

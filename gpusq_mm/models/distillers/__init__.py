from .mixed_kd_distiller import MixedKDDistiller

__all__ = ['MixedKDDistiller']

"""gpusq_mm: GPUSQ-ViT (2:4 sparsity + INT8 QAT + mixed KD) for OpenMMLab.

Importing the package (``custom_imports = dict(imports=['gpusq_mm'])``)
registers ``Sparse24Hook``, ``QATHook`` and ``MixedKDDistiller`` so that they
resolve from mmdet, mmseg and mmpretrain configs, and applies the MMEngine
patches listed in :mod:`gpusq_mm.patches` (safe checkpoint loading, atomic
checkpoint writes, a clear error for an empty data set); that module says
why each exists and how to undo it.
"""
from . import patches
from .engine import QATHook, Sparse24Hook
from .models import MixedKDDistiller
from .version import __version__

patches.apply()

__all__ = ['__version__', 'MixedKDDistiller', 'QATHook', 'Sparse24Hook']

"""gpusq_mm: GPUSQ-ViT (2:4 sparsity + INT8 QAT + mixed KD) for OpenMMLab.

Importing the package (``custom_imports = dict(imports=['gpusq_mm'])``)
registers ``Sparse24Hook``, ``QATHook`` and ``MixedKDDistiller`` so that they
resolve from mmdet, mmseg and mmpretrain configs, and routes MMEngine's
checkpoint loading through the project's safe loader and its local
checkpoint writes through an atomic (temp file + fsync + rename) backend;
an empty data set fails with a message naming it.
"""
from .engine import QATHook, Sparse24Hook
from .models import MixedKDDistiller
from .utils import register_atomic_backend, register_mmengine_loaders
from .utils.dataset_checks import register_dataset_checks
from .version import __version__

register_mmengine_loaders()
register_atomic_backend()
register_dataset_checks()

__all__ = ['__version__', 'MixedKDDistiller', 'QATHook', 'Sparse24Hook']

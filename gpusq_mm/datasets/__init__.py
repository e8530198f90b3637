"""Synthetic data for smoke tests and the demo (no downloads)."""
from .synthetic import CLASSES, make_cls, make_coco, make_seg

__all__ = ['CLASSES', 'make_coco', 'make_seg', 'make_cls']

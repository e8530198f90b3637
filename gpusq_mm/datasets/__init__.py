"""Synthetic data for smoke tests and the demo (no downloads)."""
from .render import CLASSES
from .synthetic import make_cls, make_coco, make_seg

__all__ = ['CLASSES', 'make_coco', 'make_seg', 'make_cls']

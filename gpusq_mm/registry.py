"""Registries of gpusq_mm.

The config contract (DESIGN.md §2) is that the unprefixed names
``type='Sparse24Hook'``, ``type='QATHook'`` and ``type='MixedKDDistiller'``
resolve inside mmdet, mmseg and mmpretrain configs whose ``default_scope``
stays the task's own. An unprefixed name is looked up in the task's registry
and then in its ancestors, i.e. MMEngine's root registries, never in a
sibling. gpusq_mm therefore registers its classes in MMEngine's root
``HOOKS``/``MODELS`` **and** in child registries of scope ``gpusq_mm`` so
that the scoped form ``type='gpusq_mm.Sparse24Hook'`` works too (also with a
stock ``tools/train.py`` of mmdet, thanks to ``locations``).
"""
from typing import Callable, Type

from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import Registry

HOOKS = Registry('hook', parent=MMENGINE_HOOKS, scope='gpusq_mm',
                 locations=['gpusq_mm.engine.hooks'])
MODELS = Registry('model', parent=MMENGINE_MODELS, scope='gpusq_mm',
                  locations=['gpusq_mm.models'])


def _register_in(scoped: Registry, root: Registry) -> Callable[[Type], Type]:

    def decorator(cls: Type) -> Type:
        scoped.register_module(module=cls)
        root.register_module(module=cls)
        return cls

    return decorator


def register_hook(cls: Type) -> Type:
    """Register a hook in gpusq_mm's and MMEngine's root ``HOOKS``."""
    return _register_in(HOOKS, MMENGINE_HOOKS)(cls)


def register_model(cls: Type) -> Type:
    """Register a model in gpusq_mm's and MMEngine's root ``MODELS``."""
    return _register_in(MODELS, MMENGINE_MODELS)(cls)

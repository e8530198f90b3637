"""Utilities: safe checkpoint loading, model and meta helpers."""
from .checkpoint import (CheckpointLoadError, load_checkpoint_file,
                         register_mmengine_loaders, register_safe_globals,
                         safe_globals)
from .meta import update_gpusq_meta, versions
from .model import get_student, student_prefix, unwrap_model

__all__ = [
    'CheckpointLoadError', 'load_checkpoint_file',
    'register_mmengine_loaders', 'register_safe_globals', 'safe_globals',
    'update_gpusq_meta', 'versions', 'get_student', 'student_prefix',
    'unwrap_model'
]

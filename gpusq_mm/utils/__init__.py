"""Utilities: safe checkpoint loading, atomic checkpoint writes, model and
meta helpers."""
from .atomic_io import (AtomicLocalBackend, atomic_write_bytes,
                        find_latest_checkpoint, register_atomic_backend)
from .checkpoint import (CheckpointLoadError, CheckpointUnreachableError,
                         load_checkpoint_file, register_mmengine_loaders,
                         register_safe_globals, safe_globals)
from .model import get_student, student_prefix, unwrap_model

__all__ = [
    'AtomicLocalBackend', 'atomic_write_bytes', 'find_latest_checkpoint',
    'register_atomic_backend',
    'CheckpointLoadError', 'CheckpointUnreachableError',
    'load_checkpoint_file',
    'register_mmengine_loaders', 'register_safe_globals', 'safe_globals',
    'get_student', 'student_prefix',
    'unwrap_model'
]

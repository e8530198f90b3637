"""Every change ``import gpusq_mm`` makes to MMEngine, in one place.

A user's config loads the plugin with ``custom_imports =
dict(imports=['gpusq_mm'])``, which imports the package; the guarantees
below must hold there as in our own tools, so the import applies them
(:func:`apply`, idempotent: a second call changes nothing).

- ``safe_loader`` (:func:`gpusq_mm.utils.register_mmengine_loaders`):
  MMEngine's ``CheckpointLoader`` schemes for local files, ``http(s)://``
  and ``s3://``/``petrel://``, and the module-level ``load_from_http`` the
  model-zoo schemes call. Why: every checkpoint is read with
  ``torch.load(weights_only=True)`` plus the project's allowlist, and a
  truncated file, a non-checkpoint or an unreachable URL gets an error that
  names the file and the fix.
- ``atomic_io`` (:func:`gpusq_mm.utils.register_atomic_backend`): the
  ``local`` file backend (and the empty prefix) and the two
  ``find_latest_checkpoint`` functions of MMEngine's runner. Why: a crash
  while saving never leaves a truncated checkpoint or ``last_checkpoint``
  pointer, and auto-resume skips a pointer to a file that is gone.
- ``dataset_checks`` (:func:`gpusq_mm.utils.dataset_checks.
  register_dataset_checks`): ``BaseDataset._serialize_data``. Why: a data
  set that loading and filtering leave empty fails with its name and the
  settings to check, not with ``need at least one array to concatenate``.

:func:`targets` names each replaced attribute or registry entry (a test
asserts that the import changes exactly these). To turn a patch off, call
:func:`undo` after the import, e.g. ``gpusq_mm.patches.undo('atomic_io')``:
the originals come back unchanged. Undoing ``safe_loader`` gives MMEngine's
own ``torch.load`` calls back (PyTorch's ``weights_only`` default still
applies, the allowlist and the clear errors do not); we do not recommend it.
"""
import importlib
from typing import Callable, Dict, List, Optional, Sequence, Tuple

_MISSING = object()


class Target:
    """One thing a patch replaces: attribute ``path`` of ``module`` (dotted
    through classes), or entry ``key`` of the dict found there."""

    def __init__(self, module: str, path: str,
                 key: Optional[str] = None) -> None:
        self.module, self.path, self.key = module, path, key

    def _owner(self) -> Tuple[object, str]:
        obj = importlib.import_module(self.module)
        *parents, name = self.path.split('.')
        for part in parents:
            obj = getattr(obj, part)
        return obj, name

    def get(self) -> object:
        owner, name = self._owner()
        if self.key is None:
            return owner.__dict__.get(name, _MISSING) \
                if isinstance(owner, type) else getattr(owner, name, _MISSING)
        return getattr(owner, name).get(self.key, _MISSING)

    def set(self, value: object) -> None:
        owner, name = self._owner()
        if self.key is None:
            if value is _MISSING:
                delattr(owner, name)
            else:
                setattr(owner, name, value)
            return
        table = getattr(owner, name)
        if value is _MISSING:
            table.pop(self.key, None)
        else:
            table[self.key] = value

    def __str__(self) -> str:
        name = f'{self.module}.{self.path}'
        return name if self.key is None else f'{name}[{self.key!r}]'


def _safe_loader() -> None:
    from .utils.checkpoint import register_mmengine_loaders
    register_mmengine_loaders()


def _atomic_io() -> None:
    from .utils.atomic_io import register_atomic_backend
    register_atomic_backend()


def _dataset_checks() -> None:
    from .utils.dataset_checks import register_dataset_checks
    register_dataset_checks()


_CKPT = 'mmengine.runner.checkpoint'
_BACKENDS = 'mmengine.fileio.backends.registry_utils'
#: ``{patch: (function that applies it, what it replaces)}``.
PATCHES: Dict[str, Tuple[Callable[[], None], Sequence[Target]]] = {
    'safe_loader': (_safe_loader, (
        *(Target(_CKPT, 'CheckpointLoader._schemes', key) for key in (
            '', 'http://', 'https://', r'(\S+\:)?s3://',
            r'(\S+\:)?petrel://')),
        Target(_CKPT, 'load_from_http'))),
    'atomic_io': (_atomic_io, (
        Target(_BACKENDS, 'backends', 'local'),
        Target(_BACKENDS, 'prefix_to_backends', ''),
        Target(_CKPT, 'find_latest_checkpoint'),
        Target('mmengine.runner.runner', 'find_latest_checkpoint'))),
    'dataset_checks': (_dataset_checks, (
        Target('mmengine.dataset.base_dataset',
               'BaseDataset._serialize_data'), )),
}

# originals of the applied patches: {patch: [value per target]}
_ORIGINALS: Dict[str, List[object]] = {}


def _check(names: Optional[Sequence[str]]) -> List[str]:
    names = list(PATCHES) if names is None else list(names)
    unknown = [n for n in names if n not in PATCHES]
    if unknown:
        raise ValueError(f'unknown gpusq_mm patch(es) {unknown}; the '
                         f'patches are {list(PATCHES)}')
    return names


def apply(names: Optional[Sequence[str]] = None) -> List[str]:
    """Apply the patches ``names`` (default: all) that are not applied yet.

    Returns:
        list[str]: The patches this call applied.
    """
    done = []
    for name in _check(names):
        if name in _ORIGINALS:
            continue
        fn, targets = PATCHES[name]
        _ORIGINALS[name] = [t.get() for t in targets]
        fn()
        done.append(name)
    return done


def undo(names: Optional[Sequence[str]] = None) -> List[str]:
    """Put back what the patches ``names`` (default: all) replaced.

    Returns:
        list[str]: The patches this call undid.
    """
    done = []
    for name in _check(names):
        originals = _ORIGINALS.pop(name, None)
        if originals is None:
            continue
        for target, value in zip(PATCHES[name][1], originals):
            target.set(value)
        done.append(name)
    return done


def applied() -> List[str]:
    """The patches in effect."""
    return [name for name in PATCHES if name in _ORIGINALS]


def targets(names: Optional[Sequence[str]] = None) -> List[str]:
    """Dotted names of everything the patches ``names`` replace."""
    return [str(t) for n in _check(names) for t in PATCHES[n][1]]

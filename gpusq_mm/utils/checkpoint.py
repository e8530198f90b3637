"""The project's one checkpoint loader: ``weights_only=True`` plus an
allowlist of the types MMEngine stores.

torch >= 2.6 refuses to unpickle anything but tensors and plain containers by
default, while MMEngine 0.10.7 stores ``HistoryBuffer`` objects and numpy
arrays/scalars in its checkpoints and calls ``torch.load`` without arguments.
Instead of switching the protection off, :func:`load_checkpoint_file` unpickles
with ``weights_only=True`` and a short allowlist, and
:func:`register_mmengine_loaders` makes MMEngine's ``CheckpointLoader`` (used
by ``load_from``, ``--resume`` and ``load_checkpoint``) go through it.

Loading a file that needs other globals is an explicit, per-file opt-in:
``load_checkpoint_file(path, trusted=True)`` or listing the file in the
environment variable ``GPUSQ_TRUSTED_CHECKPOINTS`` (``os.pathsep``-separated
absolute paths). Only do that for files whose origin you trust: unpickling
may run arbitrary code.
"""
import io
import os
import os.path as osp
import pickle
from typing import Any, Iterable, List, Mapping, Optional, Union

import numpy as np
import torch

TRUSTED_ENV = 'GPUSQ_TRUSTED_CHECKPOINTS'

_extra_safe_globals: List[Any] = []


class CheckpointLoadError(RuntimeError):
    """A checkpoint could not be loaded safely; the message names the fix."""


class CheckpointUnreachableError(OSError):
    """A checkpoint URL cannot be downloaded (no network, proxy, 404)."""


def _numpy_safe_globals() -> List[Any]:
    """Numpy types that appear in MMEngine checkpoints (log buffers,
    scalars kept in ``message_hub``)."""
    try:  # numpy >= 2
        from numpy._core.multiarray import _reconstruct, scalar
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.multiarray import _reconstruct, scalar
    dtypes = [type(np.dtype(t)) for t in (
        'bool', 'int8', 'uint8', 'int16', 'uint16', 'int32', 'uint32',
        'int64', 'uint64', 'float16', 'float32', 'float64')]
    return [_reconstruct, scalar, np.ndarray, np.dtype, *dtypes]


def _history_buffer_getattr(obj: Any, name: str) -> Any:
    """A ``getattr`` limited to what MMEngine's ``HistoryBuffer`` pickles.

    ``HistoryBuffer`` instances keep their statistic methods
    (``getattr(HistoryBuffer, 'mean')``, ...) in their state. The general
    ``builtins.getattr`` is not allowlisted; this stand-in answers only
    lookups of public methods of ``HistoryBuffer`` and refuses everything
    else.
    """
    from mmengine.logging import HistoryBuffer
    if obj is HistoryBuffer and not name.startswith('_') and callable(
            getattr(HistoryBuffer, name, None)):
        return getattr(obj, name)
    raise pickle.UnpicklingError(
        f'Unsupported global: getattr({obj!r}, {name!r}) is not allowed')


def safe_globals() -> List[Any]:
    """Return the allowlist used by :func:`load_checkpoint_file`.

    Returns:
        list: Classes and functions (or ``(function, 'qualified.name')``
        substitutes) that may appear in a checkpoint.
    """
    from mmengine.logging import HistoryBuffer
    return [
        HistoryBuffer, (_history_buffer_getattr, 'builtins.getattr'),
        *_numpy_safe_globals(), *_extra_safe_globals
    ]


def register_safe_globals(objs: Iterable[Any]) -> None:
    """Add trusted classes/functions to the allowlist of the loader.

    Args:
        objs (Iterable): Classes or functions that checkpoints of your own
            code store and that are safe to reconstruct.
    """
    for obj in objs:
        if obj not in _extra_safe_globals:
            _extra_safe_globals.append(obj)


def _is_trusted(path: Optional[str]) -> bool:
    if path is None:
        return False
    trusted = os.environ.get(TRUSTED_ENV, '')
    real = osp.realpath(path)
    return any(real == osp.realpath(p) for p in trusted.split(os.pathsep) if p)


def _describe(source: Union[str, io.IOBase]) -> str:
    return repr(source) if isinstance(source, str) else 'the checkpoint stream'


def load_checkpoint_file(source: Union[str, os.PathLike, io.IOBase],
                         map_location: Any = 'cpu',
                         trusted: bool = False) -> Any:
    """Load a checkpoint with ``weights_only=True`` and the project allowlist.

    Args:
        source (str | PathLike | file object): Path or binary stream.
        map_location (Any): Passed to :func:`torch.load`. Defaults to 'cpu'.
        trusted (bool): Unpickle without restrictions. This can run arbitrary
            code from the file: set it only for files you trust. Files listed
            in ``GPUSQ_TRUSTED_CHECKPOINTS`` are trusted as well.
            Defaults to False.

    Returns:
        Any: The unpickled checkpoint (usually a dict).

    Raises:
        FileNotFoundError: ``source`` is a path that does not exist.
        CheckpointLoadError: The file is truncated/corrupted or contains
            globals outside the allowlist.
    """
    if isinstance(source, os.PathLike):
        source = os.fspath(source)
    path = source if isinstance(source, str) else None
    if path is not None and not osp.isfile(path):
        raise FileNotFoundError(f'checkpoint file {path!r} does not exist; '
                                'check the path (load_from / --resume / '
                                'teacher_ckpt)')
    if trusted or _is_trusted(path):
        return torch.load(source, map_location=map_location,
                          weights_only=False)
    try:
        with torch.serialization.safe_globals(safe_globals()):
            return torch.load(source, map_location=map_location,
                              weights_only=True)
    except pickle.UnpicklingError as e:
        if not _names_a_global(e):  # the unpickler choked on bad bytes
            raise _corrupted(source, e.__cause__ or e.__context__ or e)
        raise CheckpointLoadError(
            f'refused to load {_describe(source)}: it contains Python objects '
            f'outside the safe allowlist ({_first_line(e)}). If you trust its '
            'origin, add the type with '
            'gpusq_mm.utils.register_safe_globals([...]) or list the file in '
            f'the environment variable {TRUSTED_ENV}.') from None
    except Exception as e:  # noqa: B902  zip, pickle, storage errors
        raise _corrupted(source, e)


def _names_a_global(err: BaseException) -> bool:
    text = str(err)
    return 'Unsupported global' in text or 'GLOBAL' in text


def _corrupted(source: Union[str, io.IOBase],
               err: BaseException) -> CheckpointLoadError:
    error = CheckpointLoadError(
        f'cannot read {_describe(source)}: the file is truncated or '
        f'corrupted ({_first_line(err)}). Use another checkpoint (e.g. the '
        'previous one in the work dir).')
    error.__suppress_context__ = True
    return error


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    for line in text.splitlines():
        if 'Unsupported global' in line or 'GLOBAL' in line:
            return line.strip()
    return text.splitlines()[0] if text else type(err).__name__


def _as_checkpoint(obj: Any, source: str) -> Any:
    """MMEngine expects a dict (a checkpoint or a bare state dict)."""
    if not isinstance(obj, Mapping):
        raise CheckpointLoadError(
            f'{source!r} holds a {type(obj).__name__}, not a checkpoint '
            '(a dict with a state_dict, or a state dict); save models with '
            'torch.save(dict(state_dict=model.state_dict()), path)')
    return obj


def _load_from_local(filename: str, map_location: Any) -> Any:
    filename = osp.expanduser(filename)
    return _as_checkpoint(
        load_checkpoint_file(filename, map_location=map_location), filename)


def _load_from_storage(filename: str, map_location: Any = None,
                       backend: str = 'petrel') -> Any:
    """``s3://`` / ``petrel://`` files: fetch the bytes, load safely."""
    from mmengine.fileio import get_file_backend
    data = get_file_backend(filename, backend_args=dict(
        backend=backend)).get(filename)
    with io.BytesIO(data) as buffer:
        return _as_checkpoint(
            load_checkpoint_file(buffer, map_location=map_location),
            filename)


def _load_from_http(filename: str, map_location: Any = None,
                    model_dir: Optional[str] = None,
                    progress: bool = True) -> Any:
    """Download (or reuse the torch hub cache) and load safely."""
    from torch.hub import download_url_to_file, get_dir
    model_dir = model_dir or osp.join(get_dir(), 'checkpoints')
    os.makedirs(model_dir, exist_ok=True)
    cached = osp.join(model_dir, osp.basename(filename.split('?')[0]))
    if not osp.isfile(cached):
        try:
            download_url_to_file(filename, cached, progress=progress)
        except OSError as err:  # URLError, HTTPError, socket errors
            raise CheckpointUnreachableError(
                f'cannot download checkpoint {filename!r} '
                f'({_first_line(err)}). Without internet access, download it '
                'on another machine and pass the local file instead: '
                '--cfg-options model.teacher_ckpt=PATH (distiller teacher) '
                'or load_from=PATH') from err
    return _as_checkpoint(
        load_checkpoint_file(cached, map_location=map_location), filename)


def register_mmengine_loaders() -> None:
    """Route MMEngine's ``CheckpointLoader`` (local files, URLs, model-zoo
    names, ``s3://``/``petrel://``) through :func:`load_checkpoint_file`.
    Idempotent; called by ``import gpusq_mm``."""
    from mmengine.runner import checkpoint as ckpt_mod
    loader_cls = ckpt_mod.CheckpointLoader
    loader_cls.register_scheme(prefixes='', loader=_load_from_local,
                               force=True)
    loader_cls.register_scheme(prefixes=('http://', 'https://'),
                               loader=_load_from_http,
                               force=True)
    loader_cls.register_scheme(prefixes=[r'(\S+\:)?s3://',
                                         r'(\S+\:)?petrel://'],
                               loader=_load_from_storage, force=True)
    # model-zoo schemes (open-mmlab://, torchvision://, ...) resolve their URL
    # and call the module-level ``load_from_http``: route it as well.
    ckpt_mod.load_from_http = _load_from_http

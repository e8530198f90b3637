"""Crash-safe local checkpoint writes for MMEngine.

MMEngine writes a checkpoint with ``open(path, 'wb').write(bytes)``
(``LocalBackend.put``): a job killed mid-write leaves a truncated file under
the final name, and a later ``--resume`` finds it. :class:`AtomicLocalBackend`
writes to a hidden temporary file in the same directory, flushes and
``fsync``\\ s it, then ``os.replace``\\ s it onto the final name (atomic on
POSIX), and ``fsync``\\ s the directory. A reader sees either the previous
complete file or the new complete file, never a part. Temporary files left
by a killed write are removed by the next complete write of the same name.

:func:`find_latest_checkpoint` replaces MMEngine's lookup for auto-resume: the
``last_checkpoint`` pointer is written by ``CheckpointHook`` with a plain
``open``; when it is empty or names a file that no longer exists, the newest
complete ``iter_N.pth``/``epoch_N.pth`` in the work dir is used instead and a
warning says so.

:func:`register_atomic_backend` installs both; ``import gpusq_mm`` calls it.
"""
import logging
import os
import os.path as osp
import re
import tempfile
from pathlib import Path
from typing import Optional, Union

from mmengine.fileio.backends import LocalBackend, register_backend
from mmengine.logging import print_log

TMP_MARK = '.tmp-'
_CKPT_NAME = re.compile(r'^(iter|epoch)_(\d+)\.pth$')


def atomic_write_bytes(data: bytes, filepath: Union[str, Path]) -> None:
    """Write ``data`` to ``filepath`` so that it appears whole or not at all.

    Args:
        data (bytes): The content.
        filepath (str | Path): Destination; its directory is created.
    """
    filepath = os.fspath(filepath)
    directory = osp.dirname(osp.abspath(filepath))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix=f'.{osp.basename(filepath)}{TMP_MARK}', dir=directory)
    try:
        with os.fdopen(fd, 'wb') as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, filepath)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise
    _fsync_dir(directory)
    _remove_stale(directory, osp.basename(filepath))


def _remove_stale(directory: str, name: str) -> None:
    """Delete temporary files an earlier, killed write of ``name`` left."""
    prefix = f'.{name}{TMP_MARK}'
    for entry in os.listdir(directory):
        if entry.startswith(prefix):
            try:
                os.remove(osp.join(directory, entry))
            except OSError:  # pragma: no cover - removed concurrently
                pass


def _fsync_dir(directory: str) -> None:
    """Persist the rename itself (no-op where directories can't be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. Windows
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - some filesystems refuse
        pass
    finally:
        os.close(fd)


class AtomicLocalBackend(LocalBackend):
    """MMEngine's local file backend with atomic ``put``/``put_text``.

    Everything else (``get``, ``remove``, ``join_path``, ...) is inherited.
    Registered under the name ``'local'`` for paths without a ``scheme://``
    prefix, so ``runner.save_checkpoint``, ``CheckpointHook`` and
    ``mmengine.fileio.put`` use it.
    """

    def put(self, obj: bytes, filepath: Union[str, Path]) -> None:
        atomic_write_bytes(obj, filepath)

    def put_text(self, obj: str, filepath: Union[str, Path],
                 encoding: str = 'utf-8') -> None:
        atomic_write_bytes(obj.encode(encoding), filepath)


def _newest_complete(work_dir: str) -> Optional[str]:
    """The checkpoint with the highest step among ``iter_N.pth`` /
    ``epoch_N.pth`` (temporary files are never candidates)."""
    best = None
    for name in os.listdir(work_dir):
        match = _CKPT_NAME.match(name)
        if match and osp.isfile(osp.join(work_dir, name)):
            key = (match.group(1) == 'iter', int(match.group(2)))
            if best is None or key > best[0]:
                best = (key, osp.join(work_dir, name))
    return best[1] if best else None


def find_latest_checkpoint(path: str) -> Optional[str]:
    """Find the checkpoint to auto-resume from in the work dir ``path``.

    Args:
        path (str): The work dir.

    Returns:
        str | None: The file named by ``last_checkpoint`` if it exists,
        else the newest ``iter_N.pth``/``epoch_N.pth`` in ``path``, else
        None (MMEngine then starts from scratch with a warning).
    """
    pointer = osp.join(path, 'last_checkpoint')
    if not osp.exists(pointer):
        print_log('Did not find last_checkpoint to be resumed.',
                  logger='current')
        return None
    with open(pointer) as f:
        last = f.read().strip()
    if last and osp.isfile(last):
        return last
    fallback = _newest_complete(path)
    print_log(
        f'{pointer} names {last!r}, which does not exist (an interrupted '
        f'write, or max_keep_ckpts removed it); resuming from the newest '
        f'checkpoint in the work dir instead: {fallback}',
        logger='current', level=logging.WARNING)
    return fallback


def register_atomic_backend() -> None:
    """Make MMEngine's local writes atomic and auto-resume robust.

    Idempotent; called by ``import gpusq_mm``. Only MMEngine's own backend
    registry and its runner's checkpoint lookup are touched.
    """
    register_backend('local', AtomicLocalBackend, force=True, prefixes='')
    from mmengine.runner import checkpoint as ckpt_mod
    from mmengine.runner import runner as runner_mod
    ckpt_mod.find_latest_checkpoint = find_latest_checkpoint
    runner_mod.find_latest_checkpoint = find_latest_checkpoint

"""Atomic checkpoint writes: a SIGKILL while a checkpoint is written never
leaves a truncated file under a checkpoint name, the last good checkpoint
still loads, and auto-resume never picks a partial file."""
import glob
import os
import os.path as osp
import subprocess
import sys
import time

import pytest
import torch
from mmengine.fileio import get_file_backend
from mmengine.runner import checkpoint as ckpt_mod
from mmengine.runner import runner as runner_mod
from mmengine.runner.checkpoint import save_checkpoint

from gpusq_mm.utils import (AtomicLocalBackend, CheckpointLoadError,
                            atomic_write_bytes, find_latest_checkpoint,
                            load_checkpoint_file)
from tests.utils import REPO

WORKER = osp.join(REPO, 'tests', 'test_reliability', 'write_worker.py')
NUM_FLOATS = 48 * 2**20  # 192 MiB: the write takes long enough to hit


def test_atomic_backend_is_mmengine_local_backend():
    assert isinstance(get_file_backend('/some/dir/iter_1.pth'),
                      AtomicLocalBackend)
    assert ckpt_mod.find_latest_checkpoint is find_latest_checkpoint
    assert runner_mod.find_latest_checkpoint is find_latest_checkpoint


def test_atomic_write_replaces_whole_file(tmp_path):
    target = str(tmp_path / 'sub' / 'a.bin')
    atomic_write_bytes(b'old', target)
    (tmp_path / 'sub' / '.a.bin.tmp-killed').write_bytes(b'ol')  # stale
    atomic_write_bytes(b'new content', target)
    with open(target, 'rb') as f:
        assert f.read() == b'new content'
    assert os.listdir(tmp_path / 'sub') == ['a.bin']  # no temp left


def _kill_mid_write(path: str, mode: str, watch: str) -> int:
    """Start the writer, SIGKILL it once ``watch`` (a glob) shows a file
    that is not yet complete; return the size seen at the kill."""
    proc = subprocess.Popen(
        [sys.executable, WORKER, path, str(NUM_FLOATS), mode],
        env=dict(os.environ, PYTHONPATH=REPO, OMP_NUM_THREADS='1'),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    seen, deadline = -1, time.time() + 120
    try:
        while time.time() < deadline and proc.poll() is None:
            files = [f for f in glob.glob(watch) if osp.getsize(f) > 0]
            if files:
                seen = osp.getsize(files[0])
                proc.kill()
                break
            time.sleep(0.0005)
    finally:
        proc.kill()
        out, err = proc.communicate()
    assert seen > 0, f'never saw the write in progress: {out}{err}'
    assert proc.returncode == -9
    return seen


def _good_checkpoint(directory) -> str:
    good = str(directory / 'iter_1.pth')
    save_checkpoint(dict(meta=dict(iter=1), state_dict=dict(w=torch.ones(3))),
                    good)
    with open(directory / 'last_checkpoint', 'w') as f:
        f.write(good)
    return good


@pytest.mark.parametrize('existing', [False, True])
def test_sigkill_mid_write_leaves_no_partial_checkpoint(tmp_path, existing):
    good = _good_checkpoint(tmp_path)
    target = str(tmp_path / 'iter_2.pth')
    if existing:  # an older iter_2.pth is being overwritten
        save_checkpoint(dict(meta=dict(iter=-2),
                             state_dict=dict(w=torch.zeros(2))), target)
    _kill_mid_write(target, 'atomic', str(tmp_path / '.iter_2.pth.tmp-*'))

    assert load_checkpoint_file(good)['meta']['iter'] == 1
    if existing:  # the old file is intact, not half-overwritten
        assert load_checkpoint_file(target)['meta']['iter'] == -2
    else:
        assert not osp.exists(target)
    assert find_latest_checkpoint(str(tmp_path)) == good
    # every file under a checkpoint name loads; only the hidden temp file
    # holds the partial bytes, and it would not load
    for path in glob.glob(str(tmp_path / '*.pth')):
        load_checkpoint_file(path)
    partial = glob.glob(str(tmp_path / '.iter_2.pth.tmp-*'))
    assert len(partial) == 1
    with pytest.raises(CheckpointLoadError, match='truncated or corrupted'):
        load_checkpoint_file(partial[0])


def test_control_plain_backend_leaves_truncated_checkpoint(tmp_path):
    """Without the atomic backend the same kill leaves a truncated file
    under the checkpoint's own name: the hazard the backend removes."""
    target = str(tmp_path / 'iter_2.pth')
    seen = _kill_mid_write(target, 'plain', target)
    assert seen < NUM_FLOATS * 4
    with pytest.raises(CheckpointLoadError, match='truncated or corrupted'):
        load_checkpoint_file(target)


@pytest.mark.parametrize('pointer', ['', 'missing'])
def test_auto_resume_skips_empty_or_dangling_pointer(tmp_path, pointer):
    for step in (1, 3, 2):
        save_checkpoint(dict(meta=dict(iter=step)),
                        str(tmp_path / f'iter_{step}.pth'))
    (tmp_path / '.iter_4.pth.tmp-x').write_bytes(b'partial')
    target = str(tmp_path / 'iter_4.pth') if pointer else ''
    (tmp_path / 'last_checkpoint').write_text(target)
    assert find_latest_checkpoint(str(tmp_path)) == str(
        tmp_path / 'iter_3.pth')
    assert find_latest_checkpoint(str(tmp_path / 'nowhere')) is None

"""A checkpoint whose unpickling runs a shell command is refused, and the
command never runs, through every way a checkpoint enters: tools/test.py,
tools/train.py --resume, load_from and the distiller's teacher_ckpt."""
import os
import os.path as osp

import pytest
import torch

from gpusq_mm.utils import load_checkpoint_file
from tests.utils import DEMO_CONFIGS, run_tool

CONFIG = osp.join(DEMO_CONFIGS, 'deit_tiny_gpusq.py')


class _RunsCode:
    """Unpickling this runs ``touch <marker>``."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}', ))


@pytest.fixture
def evil(tmp_path):
    marker = str(tmp_path / 'pwned')
    path = str(tmp_path / 'epoch_1.pth')
    torch.save(dict(meta=dict(epoch=1, iter=2), state_dict={},
                    payload=_RunsCode(marker)), path)
    return path, marker


def test_payload_is_live_when_trusted(evil):
    """Control: the payload does run when the file is explicitly trusted,
    so its absence below is the loader's doing."""
    path, marker = evil
    load_checkpoint_file(path, trusted=True)
    assert osp.exists(marker)


@pytest.mark.parametrize('entry', ['test.py', 'train.py --resume',
                                   'train.py load_from', 'teacher_ckpt'])
def test_malicious_checkpoint_never_runs(evil, entry, data_cwd, tmp_path):
    path, marker = evil
    work = ['--work-dir', str(tmp_path / 'work')]
    args = {
        'test.py': ('test.py', [CONFIG, path, *work]),
        'train.py --resume': ('train.py', [CONFIG, *work, '--resume', path]),
        'train.py load_from': ('train.py', [CONFIG, *work, '--cfg-options',
                                            f'load_from={path}']),
        'teacher_ckpt': ('train.py', [CONFIG, *work, '--cfg-options',
                                      f'model.teacher_ckpt={path}']),
    }[entry]
    proc = run_tool(*args, cwd=data_cwd, check=False, timeout=300)
    assert proc.returncode != 0
    assert 'CheckpointLoadError' in proc.stderr, proc.stderr[-3000:]
    assert 'safe allowlist' in proc.stderr and 'GLOBAL' in proc.stderr
    assert 'GPUSQ_TRUSTED_CHECKPOINTS' in proc.stderr
    assert not osp.exists(marker), f'the payload ran through {entry}'

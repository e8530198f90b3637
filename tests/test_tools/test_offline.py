"""The headline command on a machine without internet: an unreachable
``teacher_ckpt`` or ``load_from`` URL ends in one clear line naming the URL
and the local-file option, not a urllib traceback, and touches nothing in
the work dir."""
import hashlib
import os

import pytest

from gpusq_mm.utils import CheckpointUnreachableError
from gpusq_mm.utils.checkpoint import _load_from_http
from tests.utils import DEMO_CONFIGS, run_tool

# nothing listens on the discard port: the connection is refused at once
DEAD_URL = 'http://127.0.0.1:9/dense_epoch_12.pth'


def _tree(path: str) -> dict:
    out = {}
    for root, _, names in os.walk(path):
        for name in names:
            full = os.path.join(root, name)
            with open(full, 'rb') as f:
                out[full] = hashlib.sha256(f.read()).hexdigest()
    return out


def test_http_loader_error(tmp_path):
    with pytest.raises(CheckpointUnreachableError) as err:
        _load_from_http(DEAD_URL, model_dir=str(tmp_path))
    assert DEAD_URL in str(err.value)
    assert 'model.teacher_ckpt=PATH' in str(err.value)
    assert os.listdir(tmp_path) == []  # no partial download left


@pytest.mark.parametrize('option', ['model.teacher_ckpt', 'load_from'])
def test_train_with_unreachable_url(option, data_cwd, tmp_path):
    work = tmp_path / 'work'
    work.mkdir()
    (work / 'epoch_1.pth').write_bytes(b'an earlier checkpoint')
    before = _tree(str(work))
    config = 'deit_tiny_gpusq.py' if option.startswith('model.') \
        else 'deit_tiny_dense.py'
    proc = run_tool('train.py', [
        f'{DEMO_CONFIGS}/{config}', '--work-dir', str(work),
        '--cfg-options', f'{option}={DEAD_URL}'], cwd=data_cwd, check=False)
    assert proc.returncode == 2, proc.stderr[-3000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith('error:') and DEAD_URL in last
    assert 'PATH' in last
    if option == 'model.teacher_ckpt':
        assert 'model.teacher_ckpt=PATH' in last
    assert 'Traceback' not in proc.stderr
    assert {k: v for k, v in _tree(str(work)).items()
            if k.endswith('.pth')} == before

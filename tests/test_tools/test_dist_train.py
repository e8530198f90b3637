"""tools/dist_train.sh: 2 processes with gloo on CPU (no GPU needed)."""
import os
import os.path as osp
import socket
import subprocess
import sys

import pytest

from gpusq_mm.sparsity import count_violations
from gpusq_mm.utils import load_checkpoint_file
from tests.utils import DEMO_CONFIGS, REPO


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_dist_train_two_processes_cpu(data_cwd, tmp_path):
    work = str(tmp_path / 'work')
    env = dict(os.environ, OMP_NUM_THREADS='1', PORT=str(_free_port()),
               PATH=osp.dirname(sys.executable) + os.pathsep +
               os.environ['PATH'])
    proc = subprocess.run(
        ['bash', osp.join(REPO, 'tools', 'dist_train.sh'),
         osp.join(DEMO_CONFIGS, 'deit_tiny_gpusq.py'), '2', '--work-dir',
         work, '--cfg-options', 'train_cfg.max_epochs=2',
         'train_cfg.val_interval=2', 'custom_hooks.1.start_epoch=1',
         'custom_hooks.1.calib_batches=1'],
        cwd=data_cwd, env=env, capture_output=True, text=True, timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-5000:]
    assert 'Distributed training: True' in out
    ckpt = load_checkpoint_file(osp.join(work, 'epoch_2.pth'))
    assert ckpt['meta']['gpusq']['phase'] == 'Q'
    # 8 images, 2 ranks x batch 4: one iteration per epoch
    assert ckpt['meta']['iter'] == 2
    for name in ckpt['meta']['gpusq']['sparsity']['layers']:
        weight = ckpt['state_dict'][f'architecture.{name}']
        assert count_violations(weight) == 0, name

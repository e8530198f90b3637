"""2-process DDP (gloo, CPU): both ranks hold rank 0's masks and the same
quantizer ranges."""
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch

from tests.test_tools.test_dist_train import _free_port
from tests.utils import REPO


@pytest.mark.slow
@pytest.mark.parametrize('scales', ['frozen', 'learnable', 'entropy'])
def test_masks_identical_on_both_ranks(tmp_path, scales):
    worker = osp.join(REPO, 'tests', 'test_engine', 'dist_masks_worker.py')
    proc = subprocess.run(
        [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node=2',
         f'--master_port={_free_port()}', worker, str(tmp_path), scales],
        capture_output=True, text=True, timeout=300,
        env=dict(os.environ, PYTHONPATH=REPO))
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]
    states = [torch.load(str(tmp_path / f'state_rank{r}.pth'))
              for r in (0, 1)]
    masks = [s['masks'] for s in states]
    assert masks[0].keys() == masks[1].keys() == {'fc1.weight', 'fc2.weight'}
    for name in masks[0]:
        assert torch.equal(masks[0][name], masks[1][name]), name
    amax = [s['amax'] for s in states]
    assert len(amax[0]) == 6 and amax[0].keys() == amax[1].keys()
    for name in amax[0]:
        assert torch.equal(amax[0][name], amax[1][name]), name

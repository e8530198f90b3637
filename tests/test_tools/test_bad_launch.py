"""Launch mistakes: the slurm launcher without a GPU, resuming from a file
that does not exist (through the CLI); the work dir stays untouched."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config

from gpusq_mm.utils.dist import prepare_cpu_distributed
from tests.bad_inputs import fails, hashes
from tests.utils import DEMO_CONFIGS, run_tool


def test_slurm_launcher_without_gpu(work):
    if torch.cuda.is_available():
        pytest.skip('the slurm error is for machines without a CUDA GPU')
    with fails(work, RuntimeError, "'slurm'", 'without a GPU',
               'dist_train.sh'):
        prepare_cpu_distributed(Config(dict(launcher='slurm')))


def test_cli_resume_from_missing_file(work, data_cwd):
    before = hashes(work)
    proc = run_tool('train.py', [
        osp.join(DEMO_CONFIGS, 'deit_tiny_gpusq.py'), '--work-dir', work,
        '--resume', osp.join(work, 'iter_9.pth')], cwd=data_cwd,
        check=False, timeout=300)
    assert proc.returncode != 0
    assert 'FileNotFoundError' in proc.stderr
    assert 'iter_9.pth' in proc.stderr and 'does not exist' in proc.stderr
    assert hashes(work) == before

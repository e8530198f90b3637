"""tools/train.py and tools/test.py on the three codebases: 2 iterations on
synthetic data, a checkpoint on disk, ``--resume`` continues from it."""
import glob
import os.path as osp

import pytest
import torch

from gpusq_mm.utils import load_checkpoint_file
from tests.utils import DEMO_CONFIGS, run_tool

# config, options giving exactly 2 training iterations per "unit", the key
# of the schedule length, and the metric that tools/test.py prints
CASES = {
    'mmdet': ('mask_rcnn_swin_tiny_dense.py', 'train_cfg.max_epochs',
              'coco/bbox_mAP'),
    'mmseg': ('segformer_tiny_dense.py', 'train_cfg.max_iters', 'mIoU'),
    'mmpretrain': ('deit_tiny_dense.py', 'train_cfg.max_epochs',
                   'accuracy/top1'),
}


def test_help_shows_mmdet_flags(data_cwd):
    out = run_tool('train.py', ['--help'], cwd=data_cwd).stdout
    for flag in ('--work-dir', '--amp', '--auto-scale-lr', '--resume',
                 '--cfg-options', '--launcher'):
        assert flag in out


def _checkpoint_opts(task: str, length: int) -> list:
    if task == 'mmseg':
        return [f'train_cfg.max_iters={length}',
                f'train_cfg.val_interval={length}',
                'default_hooks.checkpoint.interval=2']
    return [f'train_cfg.max_epochs={length}',
            f'train_cfg.val_interval={length}',
            'default_hooks.checkpoint.interval=1']


@pytest.mark.slow
@pytest.mark.parametrize('task', list(CASES))
def test_train_resume_test(task, data_cwd, tmp_path):
    config, _, metric = CASES[task]
    cfg_path = osp.join(DEMO_CONFIGS, config)
    work = str(tmp_path / 'work')
    unit = 2 if task == 'mmseg' else 1  # 2 iterations per unit
    run_tool('train.py', [cfg_path, '--work-dir', work, '--cfg-options',
                          *_checkpoint_opts(task, unit)], cwd=data_cwd)
    first = _latest(work)
    ckpt = load_checkpoint_file(first)
    assert ckpt['meta']['iter'] == 2
    weights = {k: v.clone() for k, v in ckpt['state_dict'].items()}

    # resume: the schedule is extended by one unit (2 more iterations)
    proc = run_tool('train.py', [cfg_path, '--work-dir', work, '--resume',
                                 first, '--cfg-options',
                                 *_checkpoint_opts(task, 2 * unit)],
                    cwd=data_cwd)
    assert 'resumed' in (proc.stdout + proc.stderr).lower()
    resumed = load_checkpoint_file(_latest(work))
    assert resumed['meta']['iter'] == 4
    assert 'optimizer' in resumed and 'message_hub' in resumed
    changed = [k for k, v in resumed['state_dict'].items()
               if v.dtype.is_floating_point
               and not torch.equal(v, weights[k])]
    assert changed, 'resumed training did not update any weight'

    out = run_tool('test.py', [cfg_path, _latest(work), '--work-dir',
                               str(tmp_path / 'test')], cwd=data_cwd)
    assert metric in out.stdout + out.stderr


def _latest(work_dir: str) -> str:
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        path = f.read().strip()
    assert osp.isfile(path), glob.glob(osp.join(work_dir, '*'))
    return path

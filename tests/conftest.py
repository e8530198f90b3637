"""Shared fixtures: synthetic data sets and a runner for the CLI tools."""
import os
import os.path as osp
import shutil

import pytest


@pytest.fixture(scope='session')
def data_cwd(tmp_path_factory) -> str:
    """A directory holding ``data/demo/{coco,seg,cls}``: run tools from it
    so the demo configs' relative ``data_root`` points there."""
    from gpusq_mm.datasets import make_cls, make_coco, make_seg
    root = str(tmp_path_factory.mktemp('cwd'))
    # two training iterations per epoch at the demo configs' batch sizes
    # (Mask R-CNN 4, DeiT 32)
    make_coco(osp.join(root, 'data/demo/coco'), num_train=8, num_val=2)
    make_seg(osp.join(root, 'data/demo/seg'), num_train=4, num_val=2)
    make_cls(osp.join(root, 'data/demo/cls'), num_train=64, num_val=4)
    return root


@pytest.fixture(scope='session')
def gpusq_ckpt(tmp_path_factory) -> str:
    """A real toy GPUSQ checkpoint (2:4 masks + QAT ranges) at iter 4
    (read only: tests copy it)."""
    from tests.bad_inputs import GPUSQ_HOOKS
    from tests.test_engine.toy import train_toy
    work = str(tmp_path_factory.mktemp('gpusq_toy'))
    train_toy(work, GPUSQ_HOOKS)
    return osp.join(work, 'iter_4.pth')


@pytest.fixture
def work(tmp_path, gpusq_ckpt) -> str:
    """A work dir that already holds a run's checkpoints."""
    work = str(tmp_path / 'work')
    os.makedirs(work)
    for name in ('iter_2.pth', 'iter_4.pth'):
        shutil.copy(osp.join(osp.dirname(gpusq_ckpt), name),
                    osp.join(work, name))
    with open(osp.join(work, 'last_checkpoint'), 'w') as f:
        f.write(osp.join(work, 'iter_4.pth'))
    return work

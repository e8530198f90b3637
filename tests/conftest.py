"""Shared fixtures: synthetic data sets and a runner for the CLI tools."""
import os.path as osp

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

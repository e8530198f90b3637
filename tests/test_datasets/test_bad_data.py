"""Data sets that end up empty, unreadable or missing files: errors that name
the data set and the setting to check."""
import json
import os
import os.path as osp
import warnings

import pytest
from mmengine.config import Config
from mmengine.runner import Runner

from tests.bad_inputs import GPUSQ_HOOKS, fails
from tests.test_engine.toy import ToyData, runner_cfg
from tests.utils import DEMO_CONFIGS


class _Empty(ToyData):

    def __len__(self) -> int:
        return 0


def test_empty_training_set(work):
    cfg = runner_cfg(work, 4, GPUSQ_HOOKS)
    cfg['train_dataloader']['dataset'] = _Empty()
    runner = Runner(**cfg)
    with fails(work, ValueError, 'data set is empty', '_Empty',
               'filter_cfg'):
        runner.train()


def test_nan_inputs_during_calibration(work):
    hooks = [dict(GPUSQ_HOOKS[0]), dict(type='QATHook', calib_batches=1)]
    cfg = runner_cfg(work, 4, hooks)
    cfg['train_dataloader']['dataset'].x[:] = float('nan')
    runner = Runner(**cfg)
    with fails(work, ValueError, 'non-finite', 'calibration inputs',
               'data pipeline'):
        runner.train()


@pytest.fixture
def coco(tmp_path) -> str:
    from gpusq_mm.datasets import make_coco
    return make_coco(str(tmp_path / 'coco'), num_train=2, num_val=1) \
        or str(tmp_path / 'coco')


def _demo_runner(work: str, coco: str) -> Runner:
    cfg = Config.fromfile(osp.join(DEMO_CONFIGS,
                                   'mask_rcnn_swin_tiny_gpusq.py'))
    cfg.work_dir = work
    ds = cfg.train_dataloader.dataset
    ds.data_root = coco + '/'
    cfg.train_cfg.max_epochs = 1
    cfg.custom_hooks = [cfg.custom_hooks[0], dict(type='RNGStateHook')]
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.test_cfg = cfg.test_dataloader = cfg.test_evaluator = None
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        return Runner.from_cfg(cfg)


def test_coco_set_without_annotations(work, coco):
    ann = osp.join(coco, 'annotations', 'instances_train.json')
    data = json.load(open(ann))
    data['annotations'] = []  # filter_empty_gt drops every image
    json.dump(data, open(ann, 'w'))
    runner = _demo_runner(work, coco)
    with fails(work, ValueError, 'data set is empty', 'CocoDataset',
               'instances_train.json', 'filter_empty_gt'):
        runner.train()


def test_unreadable_image(work, coco):
    with open(osp.join(coco, 'train', '000000.jpg'), 'wb') as f:
        f.write(b'\xff\xd8 this is not a jpeg')
    runner = _demo_runner(work, coco)
    with fails(work, Exception, 'failed to load image', '000000.jpg'):
        runner.train()


def test_missing_image(work, coco):
    os.remove(osp.join(coco, 'train', '000001.jpg'))
    runner = _demo_runner(work, coco)
    with fails(work, FileNotFoundError, '000001.jpg'):
        runner.train()


def test_missing_annotation_file(work, coco):
    os.remove(osp.join(coco, 'annotations', 'instances_train.json'))
    runner = _demo_runner(work, coco)
    with fails(work, FileNotFoundError, 'instances_train.json'):
        runner.train()

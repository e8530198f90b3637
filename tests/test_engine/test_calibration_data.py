"""QATHook's calibration set: sample count under a batch sampler, seeded
random subset, test pipeline, class histogram, bad inputs."""
from collections import Counter
from unittest.mock import MagicMock

import pytest
import torch
from mmengine.config import Config

import gpusq_mm  # noqa: F401
from gpusq_mm import QATHook
from gpusq_mm.engine.calib_data import (calibration_batches, describe,
                                        plan_calibration)
from tests.utils import train_demo


def _log_text(runner) -> str:
    with open(runner.logger.log_file) as f:
        return f.read()


def _calibrated(runner):
    hook = next(h for h in runner.hooks if isinstance(h, QATHook))
    return hook.started


@pytest.mark.slow
def test_mask_rcnn_batch_sampler_calibrates_intended_count(data_cwd,
                                                          tmp_path,
                                                          monkeypatch):
    monkeypatch.chdir(data_cwd)
    # as in mask_rcnn_swin.py: AspectRatioBatchSampler holds the batch size
    # (4) and the loader's batch_size is None, which once made
    # calib_batches=2 two images
    sampler = {'train_dataloader.batch_sampler': dict(
        _delete_=True, type='AspectRatioBatchSampler')}
    runner = train_demo('mask_rcnn_swin_tiny_dense.py', str(tmp_path),
                        [dict(type='QATHook', start_iter=0,
                              calib_batches=2)], 1, options=sampler)
    assert runner.train_dataloader.batch_size is None
    log = _log_text(runner)
    assert 'calibrated on 8 of 8 training samples' in log  # 2 x 4
    runner = train_demo('mask_rcnn_swin_tiny_dense.py', str(tmp_path),
                        [dict(type='QATHook', start_iter=0, calib_samples=6,
                              scope='all')], 1, options=sampler)
    log = _log_text(runner)
    assert 'calibrated on 6 of 8 training samples' in log
    assert 'test pipeline' in log
    assert _calibrated(runner)


@pytest.mark.slow
def test_classifier_log_has_classes_and_large_count_warns(data_cwd,
                                                          tmp_path,
                                                          monkeypatch):
    monkeypatch.chdir(data_cwd)
    runner = train_demo('deit_tiny_dense.py', str(tmp_path),
                        [dict(type='QATHook', start_iter=0,
                              calib_samples=1000)], 1)
    log = _log_text(runner)
    assert 'calib_samples=1000 is more than the 64 training samples' in log
    assert 'calibrated on 64 of 64 training samples' in log
    assert '5 classes on this rank' in log  # all of gpusq_mm's 5 shapes


def test_calib_samples_refused_at_config_time():
    for bad in (0, -4, 2.5, True):
        with pytest.raises(ValueError, match='calib_samples must be a '
                           'positive int'):
            QATHook(calib_samples=bad)
    with pytest.raises(ValueError, match='not both'):
        QATHook(calib_samples=8, calib_batches=2)
    with pytest.warns(DeprecationWarning, match='calib_samples'):
        QATHook(calib_batches=2)


class _Dataset:
    """A pipeline dataset of ``n`` items sorted by class."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.pipeline = object()

    def __len__(self) -> int:
        return self.n

    def get_data_info(self, i: int) -> dict:
        return dict(inputs=torch.full((3, 2 + i % 2, 2), float(i)),
                    label=i * 4 // self.n)


def _runner(n: int, cfg: dict):
    runner = MagicMock()
    runner.train_dataloader.dataset = _Dataset(n)
    runner.cfg = Config(cfg)
    return runner


def test_subset_is_seeded_random_and_split_across_ranks(monkeypatch):
    test = dict(test_dataloader=dict(dataset=dict(pipeline=[])))
    calib = plan_calibration(_runner(100, test), 40, seed=3)
    assert calib.source == 'test pipeline' and len(calib.indices) == 40
    assert calib.indices == plan_calibration(_runner(100, test), 40,
                                             seed=3).indices
    assert calib.indices != list(range(40))  # not the first 40
    classes = Counter(i * 4 // 100 for i in calib.indices)
    assert len(classes) == 4  # every class of the sorted set
    from gpusq_mm.engine import calib_data
    monkeypatch.setattr(calib_data, 'get_world_size', lambda: 2)
    shares = []
    for rank in (0, 1):
        monkeypatch.setattr(calib_data, 'get_rank', lambda r=rank: r)
        shares.append(plan_calibration(_runner(100, test), 40,
                                       seed=3).indices)
    assert sorted(shares[0] + shares[1]) == sorted(calib.indices)
    assert not set(shares[0]) & set(shares[1])


def test_batches_share_input_shape():
    val = dict(val_dataloader=dict(dataset=dict(pipeline=[])))
    calib = plan_calibration(_runner(10, val), 10, seed=0)
    assert calib.source == 'val pipeline'
    batches = list(calibration_batches(calib, _Dataset(10), list, 3))
    assert sum(len(b) for b in batches) == 10
    for batch in batches:
        assert len({tuple(s['inputs'].shape) for s in batch}) == 1
    assert '10 of 10 training samples' in describe(calib)


def test_dataset_wrapper_uses_the_test_pipeline():
    wrapped = _runner(10, dict(test_dataloader=dict(dataset=dict(
        type='RepeatDataset', times=2, dataset=dict(pipeline=[])))))
    del wrapped.train_dataloader.dataset.pipeline  # like RepeatDataset
    assert plan_calibration(wrapped, 4, seed=0).source == 'test pipeline'


def test_no_test_or_val_pipeline_is_a_clear_error():
    with pytest.raises(ValueError, match='neither test_dataloader.dataset.'
                       'pipeline nor val_dataloader'):
        plan_calibration(_runner(10, {}), 4, seed=0)


def test_larger_than_dataset_uses_all():
    test = dict(test_dataloader=dict(dataset=dict(pipeline=[])))
    calib = plan_calibration(_runner(10, test), 50, seed=0)
    assert calib.total == 10 and sorted(calib.indices) == list(range(10))

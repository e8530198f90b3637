"""Demo task helpers: metric parsing, progress parsing, options."""
import pytest

from gpusq_mm.demo import TASKS, select
from gpusq_mm.demo.tasks import progress_of


def test_parse_metrics_from_test_logs():
    cls_log = ('... Epoch(test) [4/4]    accuracy/top1: 81.5000  '
               'data_time: 0.01')
    assert TASKS['cls'].parse_metrics(cls_log) == {'top-1': 81.5}
    det_log = ('coco/bbox_mAP: 0.1230 coco/bbox_mAP_50: 0.4 ...\n'
               'coco/bbox_mAP: 0.4560 coco/segm_mAP: 0.3210')
    assert TASKS['det'].parse_metrics(det_log) == pytest.approx(
        {'bbox mAP': 45.6, 'segm mAP': 32.1})
    empty = ('ERROR - coco_metric.py - The testing results of the whole '
             'dataset is empty.\n Epoch(test) [20/20] data_time: 0.01')
    assert TASKS['det'].parse_metrics(empty) == {'bbox mAP': 0.0,
                                                 'segm mAP': 0.0}
    with pytest.raises(RuntimeError, match='mIoU'):
        TASKS['seg'].parse_metrics('no metrics here')


def test_progress_and_options():
    assert progress_of('Iter(train) [ 50/200]  lr: 1e-3', 200) == 0.25
    line = 'Epoch(train)  [3][10/20]  base_lr: 1e-3'
    assert progress_of(line, 10) == pytest.approx((2 * 20 + 10) / 200)
    assert progress_of('Epoch(val) [1][4/4] accuracy', 10) is None
    cls, seg = select(['cls', 'seg'])
    assert cls.qat_start_opt() == 'custom_hooks.1.start_epoch=15'
    assert seg.qat_start_opt().startswith('custom_hooks.1.start_iter=')
    assert cls.checkpoint_name(30) == 'epoch_30.pth'
    assert seg.checkpoint_name(800) == 'iter_800.pth'
    assert 'train_cfg.max_iters=800' in seg.schedule_opts(800, 400)
    with pytest.raises(ValueError, match='unknown demo task'):
        select(['cls', 'pose'])

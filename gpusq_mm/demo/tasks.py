"""The demo's tasks: configs, data, schedule and metric of each.

Each task trains a dense teacher with its dense config, then runs GPUSQ
(phase S for ``phase_units``, then phase Q for ``phase_units``) with its
``gpusq_*.py`` config (both in ``configs/gpusq/demo``), on data generated
by :mod:`gpusq_mm.datasets`.
"""
import re
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

from gpusq_mm.datasets import make_cls, make_coco, make_seg

EMPTY_DETECTIONS = 'The testing results of the whole dataset is empty'


@dataclass
class DemoTask:
    """One task of the demo.

    Args:
        name (str): Short name (``cls``, ``seg``, ``det``).
        title (str): Human-readable model and task.
        dense_cfg (str): Dense config, relative to ``configs/gpusq/demo``.
        gpusq_cfg (str): GPUSQ config, same folder.
        make_data (Callable): Data writer of :mod:`gpusq_mm.datasets`.
        data_kwargs (dict): Its keyword arguments (sizes, counts).
        by_epoch (bool): Epoch-based (True) or iteration-based schedule.
        dense_units (int): Epochs/iterations of dense training.
        phase_units (int): Epochs/iterations of each GPUSQ phase.
        metrics (dict): ``{report name: log key}`` parsed from the test log.
        headline (str): The metric the acceptance bound applies to.
        tolerance (float): Allowed drop of ``headline`` (points).
    """
    name: str
    title: str
    dense_cfg: str
    gpusq_cfg: str
    make_data: Callable
    data_kwargs: dict
    by_epoch: bool
    dense_units: int
    phase_units: int
    metrics: Dict[str, str]
    headline: str
    tolerance: float
    extra_opts: List[str] = field(default_factory=list)
    data_root: str = ''

    def data_opts(self, root: str) -> List[str]:
        """``--cfg-options`` pointing every loader (and the COCO
        evaluator) at ``root``."""
        opts = [f'{split}_dataloader.dataset.data_root={root}/'
                for split in ('train', 'val', 'test')]
        if self.name == 'det':
            ann = f'{root}/annotations/instances_val.json'
            opts += [f'val_evaluator.ann_file={ann}',
                     f'test_evaluator.ann_file={ann}']
        return opts

    def schedule_opts(self, units: int, ckpt_every: int,
                      seed: int = 0) -> List[str]:
        """Seed, length of training, end of the main LR scheduler (the
        second one, after warm-up, in every demo config) and checkpoint
        interval."""
        key = 'max_epochs' if self.by_epoch else 'max_iters'
        return [f'randomness.seed={seed}', f'train_cfg.{key}={units}',
                f'train_cfg.val_interval={units}',
                f'param_scheduler.1.end={units}',
                f'default_hooks.checkpoint.interval={ckpt_every}']

    def qat_start_opt(self) -> str:
        key = 'start_epoch' if self.by_epoch else 'start_iter'
        return f'custom_hooks.1.{key}={self.phase_units}'

    def checkpoint_name(self, units: int) -> str:
        return f'{"epoch" if self.by_epoch else "iter"}_{units}.pth'

    def parse_metrics(self, log: str) -> Dict[str, float]:
        """The last value of each metric in a ``tools/test.py`` log."""
        out = {}
        for name, key in self.metrics.items():
            found = re.findall(re.escape(key) + r': (-?[0-9.]+)', log)
            if not found and EMPTY_DETECTIONS in log:
                found = ['0']  # mmdet reports no AP when nothing detected
            if not found:
                raise RuntimeError(f'no {key!r} in the test output')
            value = float(found[-1])
            # mmdet reports COCO AP in [0, 1]; report points like the rest
            out[name] = value * 100 if self.name == 'det' else value
        return out


TASKS: Dict[str, DemoTask] = {
    'cls': DemoTask(
        name='cls', title='classification, tiny DeiT (mmpretrain)',
        dense_cfg='deit-tiny_60e_synthetic-cls.py',
        gpusq_cfg='gpusq_deit-tiny_60e_synthetic-cls.py',
        # 500 validation images: 200 left a 1-image step of 0.5 points
        make_data=make_cls, data_kwargs=dict(num_train=1000, num_val=500),
        by_epoch=True, dense_units=60, phase_units=15,
        metrics={'top-1': 'accuracy/top1'}, headline='top-1',
        tolerance=1.0, extra_opts=['optim_wrapper.optimizer.lr=5e-4']),
    'seg': DemoTask(
        name='seg', title='semantic segmentation, tiny SegFormer (mmseg)',
        dense_cfg='segformer_mit-tiny_2k_synthetic-seg.py',
        gpusq_cfg='gpusq_segformer_mit-tiny_2k_synthetic-seg.py',
        make_data=make_seg,
        data_kwargs=dict(num_train=1000, num_val=200), by_epoch=False,
        dense_units=2000, phase_units=500, metrics={'mIoU': 'mIoU'},
        headline='mIoU', tolerance=2.0,
        extra_opts=['optim_wrapper.optimizer.lr=3e-4']),
    'det': DemoTask(
        name='det', title='instance segmentation, tiny Swin Mask R-CNN '
        '(mmdet)',
        dense_cfg='mask-rcnn_swin-tiny_fpn_12e_synthetic-coco.py',
        gpusq_cfg='gpusq_mask-rcnn_swin-tiny_fpn_12e_synthetic-coco.py',
        make_data=make_coco,
        data_kwargs=dict(num_train=1000, num_val=200), by_epoch=True,
        dense_units=8, phase_units=2,
        extra_opts=['optim_wrapper.optimizer.lr=1e-4'],
        metrics={'bbox mAP': 'coco/bbox_mAP', 'segm mAP': 'coco/segm_mAP'},
        headline='bbox mAP', tolerance=2.0),
}


def select(names: List[str]) -> List[DemoTask]:
    """Tasks by name, in the order given."""
    unknown = [n for n in names if n not in TASKS]
    if unknown:
        raise ValueError(f'unknown demo task(s) {unknown}; choose from '
                         f'{list(TASKS)}')
    return [TASKS[n] for n in names]


def progress_of(line: str, units: int) -> Optional[float]:
    """Fraction of training done according to an MMEngine log line, for a
    schedule of ``units`` epochs or iterations; None if the line has no
    training progress."""
    m = re.search(r'Iter\(train\) \[\s*(\d+)/(\d+)\]', line)
    if m:
        return int(m.group(1)) / int(m.group(2))
    m = re.search(r'Epoch\(train\)\s+\[(\d+)\]\[\s*(\d+)/(\d+)\]', line)
    if m:
        epoch, i, n = map(int, m.groups())
        return ((epoch - 1) * n + i) / (units * n)
    return None

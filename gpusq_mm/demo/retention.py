"""Equal-budget rows of the accuracy-retention comparison.

Every row starts from the same dense checkpoint and trains for exactly the
GPUSQ schedule (``2 x phase_units`` epochs or iterations, the same
optimizer, LR, scheduler, batch and seed); only what the row names differs.
The **control** is the dense model fine-tuned for that schedule: GPUSQ -
control is what GPUSQ costs, not extra training.

Used by ``tools/demo.py`` (control and GPUSQ) and
``benchmarks/retention.py`` (every row, several seeds).
"""
import os.path as osp
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from gpusq_mm.demo.runner import run_tool
from gpusq_mm.demo.tasks import DemoTask, progress_of
from gpusq_mm.resources import resource_dir

DEMO = osp.join(resource_dir('configs'), 'gpusq', 'demo')
SPARSE_HOOK = "dict(type='Sparse24Hook', method='magnitude', scope='backbone')"
RNG_HOOK = "dict(type='RNGStateHook')"


@dataclass
class Row:
    """One row: which config it trains and what it changes.

    Args:
        name (str): Row name in tables.
        base (str): ``'dense'`` (the task's dense config, no distiller) or
            ``'gpusq'`` (the task's GPUSQ config).
        hooks (str, optional): Python source of a ``custom_hooks`` list
            replacing the config's; None keeps them. Defaults to None.
        options (list): ``--cfg-options`` of the row. Defaults to [].
        note (str): What the row tests.
    """
    name: str
    base: str
    hooks: Optional[str] = None
    options: List[str] = field(default_factory=list)
    note: str = ''


CONTROL = Row('control', 'dense', note='dense, fine-tuned for the GPUSQ '
              'schedule (equal budget)')
GPUSQ = Row('GPUSQ', 'gpusq', note='2:4 + INT8 QAT + KD, defaults')
ROWS: Dict[str, Row] = {r.name: r for r in [
    CONTROL,
    Row('2:4 only', 'dense', hooks=f'[{SPARSE_HOOK}, {RNG_HOOK}]',
        note='2:4 masks fine-tuned with the task loss, no KD, float'),
    Row('2:4 + KD', 'gpusq', hooks=f'[{SPARSE_HOOK}, {RNG_HOOK}]',
        note='2:4 with KD from the dense teacher, no INT8'),
    GPUSQ,
    Row('no feature KD', 'gpusq', options=['model.distill.feature_weight=0.0'],
        note='GPUSQ without the feature term (γ = 0)'),
    Row('phi uniform', 'gpusq', options=['model.distill.phi=uniform'],
        note='GPUSQ with φ = 1 for every layer in phase Q'),
    Row('stage-2 teacher dense', 'gpusq',
        options=['model.distill.stage2_teacher=dense'],
        note='GPUSQ with the dense teacher in phase Q too'),
    Row("features 'backbone'", 'gpusq',
        options=['model.distill.features=[backbone]'],
        note='GPUSQ imitating all returned backbone levels as one term'),
]}


def row_config(task: DemoTask, row: Row, work: str) -> str:
    """The config a row trains: the task's, or a file in ``work`` that
    inherits it and replaces its hooks."""
    base = osp.join(DEMO, task.dense_cfg if row.base == 'dense' else
                    task.gpusq_cfg)
    if row.hooks is None:
        return base
    path = osp.join(work, 'row_config.py')
    with open(path, 'w') as f:
        f.write(f'_base_ = [{base!r}]\n'
                "custom_imports = dict(imports=['gpusq_mm'], "
                'allow_failed_imports=False)\n'
                f'custom_hooks = {row.hooks}\n')
    return path


def train_row(task: DemoTask, row: Row, dense_ckpt: str, work: str,
              seed: int = 0, extra: Optional[List[str]] = None) -> dict:
    """Train one row from ``dense_ckpt`` for the GPUSQ schedule and return
    the task metrics of its final validation (and the checkpoint)."""
    import os
    os.makedirs(work, exist_ok=True)
    units = 2 * task.phase_units
    opts = [*task.data_opts(task.data_root),
            *task.schedule_opts(units, task.phase_units, seed),
            *task.extra_opts, *row.options, *(extra or [])]
    if row.base == 'dense':
        opts.append(f'load_from={dense_ckpt}')
    else:
        opts.append(f'model.teacher_ckpt={dense_ckpt}')
        if row.hooks is None:
            opts.append(task.qat_start_opt())
    log = run_tool('train.py', [row_config(task, row, work), '--work-dir',
                                work, '--cfg-options', *opts],
                   osp.join(work, 'train.log'),
                   f'[{task.name}] {row.name} seed {seed}',
                   progress=lambda line: progress_of(line, units))
    metrics = task.parse_metrics(log)
    return dict(metrics=metrics,
                checkpoint=osp.join(work, task.checkpoint_name(units)))

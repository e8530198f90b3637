"""Accuracy retention against an equal-budget control, term by term.

Every row starts from one dense checkpoint and trains for exactly GPUSQ's
schedule (same epochs/iterations, optimizer, LR, scheduler, batch, seed);
see :mod:`gpusq_mm.demo.retention` for the rows. The headline is
**GPUSQ - control**: the control is the dense model fine-tuned for that
schedule, so extra training is not counted as GPUSQ's.

- cls: the demo's tiny DeiT made 9 blocks deep (so that 'auto' features,
  the last third of the blocks, differ from all blocks), every row, seeds
  ``--seeds`` (paired: a seed gives control and every other row the same
  data order and initial randomness); the paired difference row - control
  is reported as mean ± std over seeds;
- seg (tiny SegFormer) and det (tiny Mask R-CNN Swin): dense, control,
  GPUSQ, one seed.

Steps whose result exists in the work dir are reused (a rerun finishes an
interrupted benchmark); ``timing`` in the JSON says how long each took.
Prints JSON, then a markdown table; writes ``retention.json``,
``retention.md`` and ``retention.png``::

    python benchmarks/retention.py [--work-dir work_dirs/bench_retention]
        [--tasks cls seg det] [--seeds 0 1 2] [--jobs 2]
        [--cls-phase-epochs 8] [--rows ...]
        [--seg-ckpt CKPT --seg-data DIR] [--det-ckpt CKPT --det-data DIR]
"""
import argparse
import json
import os
import os.path as osp
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO)

from gpusq_mm.demo.retention import (CONTROL, DEMO, GPUSQ, ROWS,  # noqa
                                     train_row)
from gpusq_mm.demo.runner import run_tool  # noqa: E402
from gpusq_mm.demo.tasks import TASKS, DemoTask  # noqa: E402

CLS_LAYERS = 9


def cls_task(phase_epochs: int) -> DemoTask:
    """The demo's cls task, ``phase_epochs`` per GPUSQ phase."""
    return replace(TASKS['cls'], phase_units=phase_epochs)


def depth_opts(task: DemoTask, base: str) -> list:
    """cls: the DeiT made ``CLS_LAYERS`` blocks deep (dense config: its
    model; GPUSQ config: student and teacher)."""
    if task.name != 'cls':
        return []
    models = ['model'] if base == 'dense' else \
        ['model.architecture', 'model.teacher']
    return [f'{m}.backbone.arch.num_layers={CLS_LAYERS}' for m in models]


def cached(path: str, make):
    """``make()``'s JSON result, reused from ``path`` when present."""
    if osp.isfile(path):
        with open(path) as f:
            return json.load(f)
    tic = time.time()
    out = make()
    out['seconds'] = round(time.time() - tic, 1)
    with open(path, 'w') as f:
        json.dump(out, f, indent=1)
    return out


def dense(task: DemoTask, work: str, ckpt: str = None) -> dict:
    """Train (or take) the dense starting point; its final metrics."""
    if ckpt:
        out = run_tool('test.py', [osp.join(DEMO, task.dense_cfg), ckpt,
                                   '--work-dir', osp.join(work, 'test'),
                                   '--cfg-options',
                                   *task.data_opts(task.data_root),
                                   *depth_opts(task, 'dense')],
                       osp.join(work, 'test.log'), f'[{task.name}] dense')
        return dict(metrics=task.parse_metrics(out), checkpoint=ckpt)
    units = task.dense_units
    log = run_tool('train.py', [osp.join(DEMO, task.dense_cfg),
                                '--work-dir', work, '--cfg-options',
                                *task.data_opts(task.data_root),
                                *task.schedule_opts(units, units),
                                *depth_opts(task, 'dense')],
                   osp.join(work, 'train.log'), f'[{task.name}] dense')
    return dict(metrics=task.parse_metrics(log),
                checkpoint=osp.join(work, task.checkpoint_name(units)))


def run_task(task: DemoTask, rows: list, seeds: list, work: str, jobs: int,
             ckpt: str = None) -> dict:
    os.makedirs(work, exist_ok=True)
    dense_result = cached(
        osp.join(work, 'dense.json'),
        lambda: dense(task, osp.join(work, 'dense'), ckpt))
    jobs_list = [(row, seed) for seed in seeds for row in rows]

    def one(item):
        row, seed = item
        slug = row.name.replace(' ', '_').replace(':', '').replace(
            "'", '').replace('+', 'p')
        out = osp.join(work, f'{slug}_seed{seed}')
        os.makedirs(out, exist_ok=True)
        return cached(osp.join(out, 'result.json'), lambda: train_row(
            task, row, dense_result['checkpoint'], out, seed,
            depth_opts(task, row.base)))

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        results = list(pool.map(one, jobs_list))
    table = {}
    for (row, seed), res in zip(jobs_list, results):
        table.setdefault(row.name, {})[str(seed)] = res
    return dict(dense=dense_result, rows=table, headline=task.headline,
                notes={r.name: r.note for r in rows})


def summarise(task_result: dict) -> list:
    """Per row: mean metric, paired difference to the control (mean, std
    over seeds)."""
    key = task_result['headline']
    rows = task_result['rows']

    def per_seed(name):
        return {s: r['metrics'][key] for s, r in rows.get(name, {}).items()}

    def paired(values, ref):
        diffs = [values[s] - ref[s] for s in values if s in ref]
        return (statistics.mean(diffs) if diffs else None,
                statistics.stdev(diffs) if len(diffs) > 1 else None)

    control, gpusq = per_seed('control'), per_seed('GPUSQ')
    out = [dict(row='dense (start)', mean=task_result['dense']['metrics'][
        key], seeds=1, diff=None, diff_std=None, vs_gpusq=None,
        vs_gpusq_std=None)]
    for name in rows:
        values = per_seed(name)
        diff, diff_std = paired(values, control)
        vs, vs_std = paired(values, gpusq) if name not in (
            'GPUSQ', 'control') else (None, None)
        out.append(dict(
            row=name, mean=statistics.mean(values.values()),
            std=statistics.stdev(values.values()) if len(values) > 1 else
            None, seeds=len(values), diff=diff, diff_std=diff_std,
            vs_gpusq=vs, vs_gpusq_std=vs_std, values=values))
    return out


def _pm(mean, std) -> str:
    if mean is None:
        return '—'
    return f'{mean:+.2f}' + (f' ± {std:.2f}' if std is not None else '')


def markdown(report: dict) -> list:
    lines = []
    for name, res in report['tasks'].items():
        key = res['headline']
        lines += [f'### {name} ({key}, seeds {res["seeds"]})', '',
                  f'| row | {key} mean ± std | paired Δ vs control | '
                  'paired Δ vs GPUSQ | what it is |', '|---|---|---|---|---|']
        for s in res['summary']:
            std = f' ± {s["std"]:.2f}' if s.get('std') is not None else ''
            note = res['notes'].get(s['row'], 'the dense starting point')
            lines.append(f'| {s["row"]} | {s["mean"]:.2f}{std} | '
                         f'{_pm(s["diff"], s["diff_std"])} | '
                         f'{_pm(s["vs_gpusq"], s["vs_gpusq_std"])} | '
                         f'{note} |')
        lines.append('')
    lines.append(f'wall time {report["wall_s"] / 60:.1f} min '
                 f'({report["machine"]})')
    return lines


def plot(report: dict, path: str) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    tasks = report['tasks']
    fig, axes = plt.subplots(1, len(tasks), figsize=(6 * len(tasks), 4),
                             squeeze=False)
    for ax, (name, res) in zip(axes[0], tasks.items()):
        rows = [s for s in res['summary'] if s['diff'] is not None]
        ax.barh([s['row'] for s in rows], [s['diff'] for s in rows],
                xerr=[s['diff_std'] or 0 for s in rows], color='tab:blue')
        ax.axvline(0, color='k', lw=0.8)
        ax.invert_yaxis()
        ax.set_title(f'{name}: {res["headline"]} - control (paired)')
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--work-dir', default='work_dirs/bench_retention')
    parser.add_argument('--tasks', nargs='+', default=['cls', 'seg', 'det'])
    parser.add_argument('--seeds', nargs='+', type=int, default=[0, 1, 2])
    parser.add_argument('--jobs', type=int, default=2,
                        help='trainings at once (each gets 1 thread)')
    parser.add_argument('--cls-phase-epochs', type=int, default=8)
    parser.add_argument('--rows', nargs='+', default=list(ROWS),
                        help=f'cls rows, any of {list(ROWS)}')
    for t in ('cls', 'seg', 'det'):
        parser.add_argument(f'--{t}-ckpt', help='dense checkpoint to start '
                            'from (default: train one)')
        parser.add_argument(f'--{t}-data', help='data root made by the demo '
                            '(default: generate it)')
    args = parser.parse_args()
    unknown = set(args.rows) - set(ROWS)
    if unknown:
        parser.error(f'unknown rows {sorted(unknown)}; choose from '
                     f'{list(ROWS)}')
    if args.jobs > 1:
        os.environ['OMP_NUM_THREADS'] = '1'
    work = osp.abspath(args.work_dir)
    os.makedirs(work, exist_ok=True)
    start = time.time()
    report = dict(command='python benchmarks/retention.py ' +
                  ' '.join(sys.argv[1:]),
                  machine=f'{os.cpu_count()} CPUs', tasks={})
    for name in args.tasks:
        task = cls_task(args.cls_phase_epochs) if name == 'cls' \
            else TASKS[name]
        data = getattr(args, f'{name}_data')
        task.data_root = data or task.make_data(
            osp.join(work, name, 'data'), **task.data_kwargs)
        if name == 'cls':
            rows, seeds = [ROWS[r] for r in args.rows], args.seeds
        else:
            rows, seeds = [CONTROL, GPUSQ], args.seeds[:1]
        res = run_task(task, rows, seeds, osp.join(work, name), args.jobs,
                       getattr(args, f'{name}_ckpt'))
        res['seeds'] = seeds
        res['summary'] = summarise(res)
        report['tasks'][name] = res
    report['wall_s'] = round(time.time() - start, 1)
    report['step_seconds'] = sum(
        r.get('seconds', 0) for t in report['tasks'].values()
        for r in [t['dense']] + [x for v in t['rows'].values()
                                 for x in v.values()])
    with open(osp.join(work, 'retention.json'), 'w') as f:
        json.dump(report, f, indent=1)
    lines = markdown(report)
    with open(osp.join(work, 'retention.md'), 'w') as f:
        f.write('\n'.join(lines) + '\n')
    plot(report, osp.join(work, 'retention.png'))
    print(json.dumps({n: t['summary'] for n, t in report['tasks'].items()},
                     indent=1))
    print('\n'.join(lines))


if __name__ == '__main__':
    main()

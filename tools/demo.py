"""The whole GPUSQ pipeline on generated data, on a CPU (``make demo``).

For each task (``--tasks``, default ``cls seg det``):

1. generate the deterministic synthetic data set,
2. train the dense teacher (``configs/gpusq/demo/``, ``TASKS`` in
   :mod:`gpusq_mm.demo.tasks`),
3. GPUSQ: phase S (2:4 + KD) then phase Q (INT8 QAT + KD) in one
   ``tools/train.py`` run of ``gpusq_*.py``, teacher = the dense checkpoint,
4. the equal-budget control: the dense model fine-tuned for exactly the
   GPUSQ schedule (same epochs/iterations, LR, scheduler, seed), so that
   GPUSQ - control is what GPUSQ costs, not extra training,
5. evaluate dense / 2:4 (end of phase S) / 2:4+INT8 (end of phase Q) with
   ``tools/test.py`` and the task metric (the control's is the final
   validation of its training run, on the same set),
6. weight sizes (packed INT8 2:4 file) and the per-layer 2:4 check,
7. deploy the dense (FP32) and the GPUSQ (INT8 Q/DQ, 2:4) checkpoints to
   ONNX with ``tools/deploy.py`` (with its ONNX Runtime vs PyTorch parity
   check) and time the two graphs with ONNX Runtime, batch 1 and 8,

then write ``report.json``, ``report.md`` and PNG plots to the work dir and
print the results table::

    python tools/demo.py [--work-dir work_dirs/demo] [--tasks cls seg det]
"""
import argparse
import os
import os.path as osp
import platform
import sys
import time
from dataclasses import replace

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO)

from gpusq_mm.demo import report as rep  # noqa: E402
from gpusq_mm.demo.deploy_step import deploy_task  # noqa: E402
from gpusq_mm.demo.retention import CONTROL, train_row  # noqa: E402
from gpusq_mm.demo.runner import run_tool  # noqa: E402
from gpusq_mm.demo.tasks import DemoTask, progress_of, select  # noqa: E402

DEMO = osp.join(REPO, 'configs', 'gpusq', 'demo')


def train(task: DemoTask, cfg: str, work: str, units: int, ckpt_every: int,
          extra: list, desc: str) -> None:
    run_tool('train.py', [osp.join(DEMO, cfg), '--work-dir', work,
                          '--cfg-options', *task.data_opts(task.data_root),
                          *task.schedule_opts(units, ckpt_every), *extra],
             osp.join(work, 'train.log'), desc,
             progress=lambda line: progress_of(line, units))


def evaluate(task: DemoTask, cfg: str, ckpt: str, work: str,
             desc: str) -> dict:
    out = run_tool('test.py', [osp.join(DEMO, cfg), ckpt, '--work-dir', work,
                               '--cfg-options',
                               *task.data_opts(task.data_root)],
                   osp.join(work, 'test.log'), desc)
    return task.parse_metrics(out)


def run_task(task: DemoTask, work: str, skip_deploy: bool) -> dict:
    """Steps 1-7 for one task; returns its part of the report."""
    seconds = {}
    tic = time.time()
    task.data_root = task.make_data(osp.join(work, 'data'), progress=True,
                                    **task.data_kwargs)
    seconds['data'] = time.time() - tic

    tic = time.time()
    dense_dir = osp.join(work, 'dense')
    train(task, task.dense_cfg, dense_dir, task.dense_units,
          task.dense_units, [], f'[{task.name}] dense teacher')
    dense_ckpt = osp.join(dense_dir, task.checkpoint_name(task.dense_units))
    seconds['dense train'] = time.time() - tic

    tic = time.time()
    gpusq_dir = osp.join(work, 'gpusq')
    units = 2 * task.phase_units
    train(task, task.gpusq_cfg, gpusq_dir, units, task.phase_units,
          [f'model.teacher_ckpt={dense_ckpt}', task.qat_start_opt(),
           *task.extra_opts],
          f'[{task.name}] GPUSQ phase S -> Q')
    ckpt_s = osp.join(gpusq_dir, task.checkpoint_name(task.phase_units))
    ckpt_q = osp.join(gpusq_dir, task.checkpoint_name(units))
    seconds['GPUSQ train'] = time.time() - tic

    tic = time.time()
    control = train_row(task, CONTROL, dense_ckpt, osp.join(work, 'control'))
    seconds['control train'] = time.time() - tic

    tic = time.time()
    metrics = {
        'dense': evaluate(task, task.dense_cfg, dense_ckpt,
                          osp.join(work, 'test_dense'),
                          f'[{task.name}] eval dense'),
        # the final validation of the control's training run: the same
        # checkpoint on the same set (test_dataloader = val_dataloader)
        'control': control['metrics'],
        '2:4': evaluate(task, task.gpusq_cfg, ckpt_s,
                        osp.join(work, 'test_24'), f'[{task.name}] eval 2:4'),
        '2:4+INT8': evaluate(task, task.gpusq_cfg, ckpt_q,
                             osp.join(work, 'test_24_int8'),
                             f'[{task.name}] eval 2:4+INT8'),
    }
    seconds['eval'] = time.time() - tic
    stats = rep.checkpoint_stats(ckpt_q)
    tic = time.time()
    deploy = deploy_task(task, work, dense_ckpt, ckpt_q, skip_deploy)
    seconds['deploy'] = time.time() - tic
    return dict(name=task.name, title=task.title, headline=task.headline,
                tolerance=task.tolerance, metrics=metrics, stats=stats,
                deploy=deploy, seconds=seconds,
                checkpoints=dict(dense=dense_ckpt, sparse=ckpt_s,
                                 gpusq=ckpt_q))


def quick(task: DemoTask) -> DemoTask:
    """The same task with tiny data and schedule (smoke runs)."""
    # iteration schedules stay past the 50-iteration warm-up of the configs
    units = (2, 1) if task.by_epoch else (60, 30)
    return replace(task, dense_units=units[0], phase_units=units[1],
                   data_kwargs=dict(task.data_kwargs, num_train=60,
                                    num_val=20))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--work-dir', default='work_dirs/demo')
    parser.add_argument('--tasks', nargs='+', default=['cls', 'seg', 'det'],
                        help='any of: cls seg det')
    parser.add_argument('--skip-deploy', action='store_true',
                        help='do not run the ONNX deploy/latency step')
    parser.add_argument('--quick', action='store_true',
                        help='smoke run: 60/20 images, a few iterations '
                        '(numbers meaningless; checks the pipeline)')
    args = parser.parse_args()
    tasks = [quick(t) for t in select(args.tasks)] if args.quick \
        else select(args.tasks)
    work = rep.ensure_dir(osp.abspath(args.work_dir))
    os.environ.setdefault('OMP_NUM_THREADS', str(os.cpu_count() or 1))
    start = time.time()
    report = dict(command='python tools/demo.py ' + ' '.join(sys.argv[1:]),
                  machine=f'{platform.machine()}, {os.cpu_count()} CPUs, '
                  f'{platform.processor() or "cpu"}', tasks={})
    for task in tasks:
        print(f'== {task.name}: {task.title}', flush=True)
        report['tasks'][task.name] = run_task(
            task, rep.ensure_dir(osp.join(work, task.name)),
            args.skip_deploy)
        report['wall_s'] = round(time.time() - start, 1)
        rep.write_json(osp.join(work, 'report.json'), report)
    report['plots'] = rep.write_plots(work, report)
    rep.write_json(osp.join(work, 'report.json'), report)
    rep.write_markdown(osp.join(work, 'report.md'), report)
    print('\n' + '\n'.join(rep.results_table(report)))
    print('\n' + '\n'.join(rep.size_table(report)))
    print('\n' + '\n'.join(rep.latency_lines(report)))
    print(f'\nwall time {report["wall_s"] / 60:.1f} min; report: '
          f'{osp.join(work, "report.md")}')


if __name__ == '__main__':
    main()

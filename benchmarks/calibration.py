"""Accuracy right after INT8 calibration (before any QAT step): calibrators,
old vs new calibration sampling, and NVIDIA ModelOpt.

On the demo's tiny DeiT (top-1) and tiny SegFormer (mIoU), trained dense on
the demo's synthetic data (or given with ``--cls-ckpt`` / ``--seg-ckpt``),
each row fake-quantizes a fresh copy of the dense model, calibrates it and
evaluates it on the validation set:

- ``gpusq`` rows: ``QATHook``'s layer selection (``scope='backbone'``
  unless stated, patch embedding float) with each calibrator, on
  - *old* sampling: the first ``4 x batch size`` training samples (the old
    ``calib_batches=4``) through the training pipeline, training-mode
    preprocessing;
  - *new* sampling: ``QATHook``'s default, a seeded random subset of
    ``calib_samples`` (512 cls, 64 seg) through the test pipeline;
- ``modelopt`` row: ``mtq.quantize(model, INT8_DEFAULT_CFG, forward_loop)``
  (ModelOpt's own max calibration, its own layer selection: every
  Linear/Conv2d) on the new samples.

Prints JSON, then a markdown table::

    python benchmarks/calibration.py [--work-dir work_dirs/bench_calib]
        [--tasks cls seg] [--cls-ckpt CKPT] [--seg-ckpt CKPT]
        [--cls-epochs 60] [--seg-iters 2000]
"""
import argparse
import copy
import json
import os
import os.path as osp
import sys
import time

import torch

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO)
DEMO = osp.join(REPO, 'configs', 'gpusq', 'demo')
OLD_CALIB_BATCHES = 4


def train_dense(task, work: str, units: int) -> str:
    """Train the task's dense demo model; return its checkpoint."""
    from gpusq_mm.demo.runner import run_tool
    out = osp.join(work, task.name, 'dense')
    run_tool('train.py', [osp.join(DEMO, task.dense_cfg), '--work-dir', out,
                          '--cfg-options', *task.data_opts(task.data_root),
                          *task.schedule_opts(units, units)],
             osp.join(out, 'train.log'), f'[{task.name}] dense')
    return osp.join(out, task.checkpoint_name(units))


def build_runner(task, ckpt: str, work: str):
    """A Runner of the dense config whose model holds ``ckpt``."""
    from mmengine.config import Config
    from mmengine.runner import Runner
    cfg = Config.fromfile(osp.join(DEMO, task.dense_cfg))
    opts = dict(o.split('=', 1) for o in task.data_opts(task.data_root))
    cfg.merge_from_dict(opts)
    cfg.work_dir = osp.join(work, task.name, 'bench')
    cfg.randomness = dict(seed=0)
    runner = Runner.from_cfg(cfg)
    runner.load_checkpoint(ckpt)
    return runner


def old_batches(runner):
    """The old sampling: the first 4 training batches' samples, training
    pipeline, training-mode preprocessing."""
    from gpusq_mm.engine.calib_data import loader_batch_size
    loader = runner.train_dataloader
    size = loader_batch_size(loader)
    data = loader.dataset
    for start in range(0, OLD_CALIB_BATCHES * size, size):
        yield loader.collate_fn([data[i] for i in range(start, start + size)
                                 if i < len(data)]), True


def new_batches(runner, model):
    """QATHook's sampling (defaults), test-mode preprocessing."""
    from gpusq_mm.engine.calib_data import (calibration_batches,
                                            default_calib_samples,
                                            loader_batch_size,
                                            plan_calibration)
    loader = runner.train_dataloader
    calib = plan_calibration(runner, default_calib_samples(model), 0)
    for batch in calibration_batches(calib, loader.dataset,
                                     loader.collate_fn,
                                     loader_batch_size(loader)):
        yield batch, False


def forward_loop(runner, sampling: str):
    """Run the calibration batches of ``sampling`` through a model."""

    def loop(model) -> None:
        model.eval()
        batches = old_batches(runner) if sampling == 'old' else \
            new_batches(runner, model)
        with torch.no_grad():
            for batch, training in batches:
                data = model.data_preprocessor(batch, training)
                model(**data, mode='tensor')

    return loop


def gpusq_quantize(model, loop, calibrator: str, scope: str) -> None:
    from gpusq_mm.quantization import (calibrate, insert_quantizers,
                                       select_quant_layers)
    from gpusq_mm.utils.scope import resolve_scope
    scope, _ = resolve_scope(model, scope)
    insert_quantizers(model, select_quant_layers(model, scope=scope))
    calibrate(model, loop, calibrator)


def modelopt_quantize(model, loop) -> dict:
    """ModelOpt's INT8 PTQ; returns ``{module class: count}`` of the
    modules holding an enabled quantizer (what it chose to quantize)."""
    import modelopt.torch.quantization as mtq
    from modelopt.torch.quantization.nn import TensorQuantizer
    mtq.quantize(model, mtq.INT8_DEFAULT_CFG, forward_loop=loop)
    counts = {}
    for module in model.modules():
        if any(isinstance(q, TensorQuantizer) and q.is_enabled
               for q in module.children()):
            name = type(module).__name__
            counts[name] = counts.get(name, 0) + 1
    return counts


def gpusq_counts(model) -> dict:
    """``{module class: count}`` of the fake-quantized layers."""
    from gpusq_mm.quantization import quant_layers, range_holders
    layers = quant_layers(model)
    counts = {}
    for key, quantizer in range_holders(model).items():
        # a layer's input range is named after the layer
        name = type(layers.get(key, quantizer)).__name__
        counts[name] = counts.get(name, 0) + 1
    return counts


def evaluate(runner, model, key: str) -> float:
    runner.model = model
    return float(runner.test()[key])


def bench_task(task, ckpt: str, work: str) -> list:
    """Every row of one task."""
    runner = build_runner(task, ckpt, work)
    dense = runner.model
    key = next(iter(task.metrics.values()))
    rows = [dict(engine='fp32', sampling='-', calibrator='-', scope='-',
                 value=evaluate(runner, copy.deepcopy(dense), key))]
    variants = [('gpusq', s, c, 'backbone') for s in ('old', 'new')
                for c in ('max', 'percentile', 'mse', 'entropy')]
    variants += [('gpusq', 'new', 'max', 'all'),
                 ('modelopt', 'new', 'max', 'all')]
    for engine, sampling, calibrator, scope in variants:
        model = copy.deepcopy(dense)
        loop = forward_loop(runner, sampling)
        tic = time.time()
        try:
            if engine == 'gpusq':
                gpusq_quantize(model, loop, calibrator, scope)
                counts = gpusq_counts(model)
            else:
                counts = modelopt_quantize(model, loop)
        except ImportError as e:
            rows.append(dict(engine=engine, sampling=sampling,
                             calibrator=calibrator, scope=scope,
                             value=None, error=str(e)))
            continue
        seconds = time.time() - tic
        rows.append(dict(engine=engine, sampling=sampling,
                         calibrator=calibrator, scope=scope,
                         value=evaluate(runner, model, key),
                         calib_s=round(seconds, 1), quantized=counts))
    return rows


def table(results: dict) -> str:
    lines = ['| task | metric | engine | sampling | calibrator | scope | '
             'value | calib s |', '|---|---|---|---|---|---|---|---|']
    for name, res in results['tasks'].items():
        for row in res['rows']:
            value = 'n/a' if row['value'] is None else f"{row['value']:.2f}"
            lines.append(f"| {name} | {res['metric']} | {row['engine']} | "
                         f"{row['sampling']} | {row['calibrator']} | "
                         f"{row['scope']} | {value} | "
                         f"{row.get('calib_s', '')} |")
    return '\n'.join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--work-dir', default='work_dirs/bench_calib')
    parser.add_argument('--tasks', nargs='+', default=['cls', 'seg'])
    parser.add_argument('--cls-ckpt')
    parser.add_argument('--seg-ckpt')
    parser.add_argument('--cls-epochs', type=int, default=60)
    parser.add_argument('--seg-iters', type=int, default=2000)
    args = parser.parse_args()
    from gpusq_mm.demo.tasks import select
    work = osp.abspath(args.work_dir)
    os.makedirs(work, exist_ok=True)
    start = time.time()
    results = dict(command='python benchmarks/calibration.py ' +
                   ' '.join(sys.argv[1:]), tasks={})
    for task in select(args.tasks):
        task.data_root = task.make_data(osp.join(work, 'data', task.name),
                                        **task.data_kwargs)
        ckpt = getattr(args, f'{task.name}_ckpt') or train_dense(
            task, work, args.cls_epochs if task.name == 'cls'
            else args.seg_iters)
        results['tasks'][task.name] = dict(
            title=task.title, metric=task.headline, checkpoint=ckpt,
            rows=bench_task(task, ckpt, work))
    results['wall_s'] = round(time.time() - start, 1)
    print(json.dumps(results, indent=1))
    print(table(results))
    with open(osp.join(work, 'calibration.json'), 'w') as f:
        json.dump(results, f, indent=1)


if __name__ == '__main__':
    main()

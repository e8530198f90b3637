"""The demo's deploy step: ONNX export and ONNX Runtime FP32 vs INT8
latency, by calling ``tools/deploy.py`` and
``tools/analysis/benchmark_onnx.py`` as subprocesses.

When those tools are not in the checkout the step is skipped and the
report says why; it never invents a number.
"""
import glob
import json
import os
import os.path as osp
from typing import Dict

from .runner import REPO, ToolError, run_tool

CODEBASE = dict(cls=('classification', 'mmpretrain'),
                seg=('segmentation', 'mmseg'), det=('detection', 'mmdet'))
TOOLS = ('tools/deploy.py', 'tools/analysis/benchmark_onnx.py')


def _missing(repo: str) -> list:
    return [t for t in TOOLS if not osp.isfile(osp.join(repo, t))]


def _onnx_bytes(work_dir: str) -> int:
    path = osp.join(work_dir, 'end2end.onnx')
    size = osp.getsize(path)
    data = osp.join(work_dir, 'end2end.onnx.data')
    return size + (osp.getsize(data) if osp.isfile(data) else 0)


def deploy_task(task, work: str, dense_ckpt: str, gpusq_ckpt: str,
                skip: bool, threads: int = 2) -> Dict:
    """Export the dense model (FP32) and the GPUSQ model (INT8 Q/DQ, 2:4
    weights), and time FP32 vs INT8 with ONNX Runtime.

    Returns:
        dict: ``status`` ('ok', 'skipped' or 'failed'), and either
        ``reason`` or ``onnx_bytes``, ``parity`` and ``latency`` rows.
    """
    if skip:
        return dict(status='skipped', reason='--skip-deploy given')
    repo = os.environ.get('GPUSQ_DEPLOY_REPO', REPO)
    missing = _missing(repo)
    if missing:
        return dict(status='skipped', reason=f'{", ".join(missing)} not in '
                    f'{repo} (the deploy tools are another issue; the step '
                    'runs once they are merged)')
    kind, scope = CODEBASE[task.name]
    cfgs = osp.join(repo, 'configs', 'deploy', kind)
    demo = osp.join(REPO, 'configs', 'gpusq', 'demo')
    img = sorted(glob.glob(osp.join(task.data_root, '**', '*.jpg'),
                           recursive=True))[-1]
    out = {}
    try:
        for label, cfg, model_cfg, ckpt, extra in (
                ('fp32', f'{kind}_onnxruntime_fp32-dense.py', task.dense_cfg,
                 dense_ckpt, ['--dense']),
                ('int8', f'{kind}_onnxruntime_int8.py', task.gpusq_cfg,
                 gpusq_ckpt, [])):
            wd = osp.join(work, f'deploy_{label}')
            run_tool('deploy.py', [osp.join(cfgs, cfg),
                                   osp.join(demo, model_cfg), ckpt, img,
                                   '--work-dir', wd, *extra],
                     osp.join(wd, 'deploy.log'),
                     f'[{task.name}] deploy {label}', repo=repo)
            with open(osp.join(wd, 'report.json')) as f:
                out[label] = dict(report=json.load(f),
                                  onnx_bytes=_onnx_bytes(wd))
        bench = osp.join(work, 'onnx_bench')
        h, w = _input_hw(task)
        run_tool(osp.join('analysis', 'benchmark_onnx.py'), [
            osp.join(demo, task.gpusq_cfg), '--checkpoint', gpusq_ckpt,
            '--scope', scope, '--shape', str(h), str(w), '--batch', '1',
            '--threads', str(threads), '--work-dir', bench],
            osp.join(bench, 'bench.log'), f'[{task.name}] ORT latency',
            repo=repo)
        with open(osp.join(bench, 'benchmark.json')) as f:
            res = json.load(f)
    except (ToolError, OSError, KeyError) as e:
        return dict(status='failed', reason=str(e)[:2000])
    latency = [dict(label=k, median_ms=round(v, 3),
                    speedup_vs_fp32=round(res['speedup_vs_fp32'][k], 3))
               for k, v in res['median_ms'].items()]
    return dict(status='ok', input_shape=res['input_shape'],
                threads=threads, latency=latency,
                onnx_bytes={k: v['onnx_bytes'] for k, v in out.items()},
                parity={k: v['report'].get('parity') for k, v in
                        out.items()})


def _input_hw(task) -> tuple:
    size = task.data_kwargs.get('size')
    if size:
        return size
    return dict(cls=(64, 64), seg=(64, 64), det=(128, 160))[task.name]

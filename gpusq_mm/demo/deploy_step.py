"""The demo's deploy step: ``tools/deploy.py`` exports the dense model
(FP32) and the GPUSQ model (INT8 Q/DQ, 2:4 weights) for ONNX Runtime and
for OpenVINO and checks each deployed graph against PyTorch; then the four
deployed graphs (ONNX Runtime: for INT8 the deploy step's ORT lowering,
``end2end.ort.onnx``; OpenVINO: the IR ``end2end.xml``) are timed on a real
validation image, interleaved, ORT's workers spinning only within a run
(``spin='run'``, :data:`gpusq_mm.deploy.exporter.SPIN_MODES`), at batch 1
and (where the graph's batch is dynamic) batch 8. Without ``openvino``
installed the OpenVINO half is skipped and the report says so.

``--skip-deploy`` skips the step; the report then says so.
"""
import glob
import json
import os.path as osp
from typing import Dict, List

import numpy as np

from .runner import REPO, ToolError, run_tool

CODEBASE = dict(cls='classification', seg='segmentation', det='detection')
BATCHES = (1, 8)


def _onnx_bytes(work_dir: str) -> int:
    path = osp.join(work_dir, 'end2end.onnx')
    size = osp.getsize(path)
    data = osp.join(work_dir, 'end2end.onnx.data')
    return size + (osp.getsize(data) if osp.isfile(data) else 0)


def _backends() -> tuple:
    """``(backends to deploy to, why OpenVINO is left out or '')``."""
    import importlib.util
    if importlib.util.find_spec('openvino') is None:
        return ('onnxruntime', ), 'openvino is not installed (make setup)'
    return ('onnxruntime', 'openvino'), ''


def deploy_task(task, work: str, dense_ckpt: str, gpusq_ckpt: str,
                skip: bool, threads: int = 2, repeats: int = 30) -> Dict:
    """Deploy the dense and the GPUSQ checkpoint to ONNX Runtime and
    OpenVINO and time the deployed graphs.

    Returns:
        dict: ``status`` ('ok', 'skipped' or 'failed'), and either
        ``reason`` or ``onnx_bytes``, ``parity`` (per deploy: ``fp32``,
        ``int8``, ``ov_fp32``, ``ov_int8``), ``openvino`` (IR facts or why
        it was skipped) and ``latency`` rows (``batch``, ``fp32_ms``,
        ``int8_ms``, ``speedup`` of ONNX Runtime and ``ov_fp32_ms``,
        ``ov_int8_ms``, ``ov_speedup`` of OpenVINO).
    """
    if skip:
        return dict(status='skipped', reason='--skip-deploy given')
    kind = CODEBASE[task.name]
    cfgs = osp.join(REPO, 'configs', 'deploy', kind)
    demo = osp.join(REPO, 'configs', 'gpusq', 'demo')
    img = sorted(glob.glob(osp.join(task.data_root, '**', '*.jpg'),
                           recursive=True))[-1]
    out, onnx = {}, {}
    backends, ov_skipped = _backends()
    try:
        for label, cfg, model_cfg, ckpt, extra in _deploys(
                kind, task, dense_ckpt, gpusq_ckpt, backends):
            wd = osp.join(work, f'deploy_{label}')
            run_tool('deploy.py', [osp.join(cfgs, cfg),
                                   osp.join(demo, model_cfg), ckpt, img,
                                   '--work-dir', wd, *extra],
                     osp.join(wd, 'deploy.log'),
                     f'[{task.name}] deploy {label}')
            with open(osp.join(wd, 'report.json')) as f:
                out[label] = json.load(f)
            # the graph each runtime is meant to run: the deploy step's
            # ORT lowering of the Q/DQ graph where it wrote one, the IR
            onnx[label] = out[label]['openvino']['xml'] \
                if label.startswith('ov_') else out[label].get(
                    'ort_lowering', {}).get('onnx',
                                            osp.join(wd, 'end2end.onnx'))
        inputs = _example_input(osp.join(cfgs, f'{kind}_onnxruntime_int8.py'),
                                osp.join(demo, task.gpusq_cfg), img)
        latency = _time(onnx, inputs, threads, repeats)
    except (ToolError, OSError, KeyError, RuntimeError) as e:
        return dict(status='failed', reason=str(e)[:2000])
    ov = {k: dict(bin_bytes=v['openvino']['bin_bytes'],
                  int8_weight_bytes=v['openvino']['int8_weight_bytes'],
                  int8_gemm_layers=v['openvino']['execution'][
                      'int8_gemm_layers'],
                  gemm_layers=v['openvino']['execution']['gemm_layers'])
          for k, v in out.items() if 'openvino' in v}
    return dict(status='ok', input_shape=list(inputs.shape[1:]),
                threads=threads, repeats=repeats, latency=latency,
                graphs={k: osp.basename(p) for k, p in onnx.items()},
                onnx_bytes={k: _onnx_bytes(osp.dirname(p))
                            for k, p in onnx.items()
                            if not k.startswith('ov_')},
                openvino=ov or dict(skipped=ov_skipped),
                parity={k: v.get('parity') for k, v in out.items()})


def _deploys(kind: str, task, dense_ckpt: str, gpusq_ckpt: str,
             backends: tuple) -> List[tuple]:
    """``(label, deploy config, model config, checkpoint, extra args)`` of
    each deploy: dense FP32 and GPUSQ INT8 per backend."""
    runs = []
    for backend in backends:
        prefix = 'ov_' if backend == 'openvino' else ''
        runs += [(f'{prefix}fp32', f'{kind}_{backend}_fp32-dense.py',
                  task.dense_cfg, dense_ckpt, ['--dense']),
                 (f'{prefix}int8', f'{kind}_{backend}_int8.py',
                  task.gpusq_cfg, gpusq_ckpt, [])]
    return runs


def _example_input(deploy_cfg: str, model_cfg: str, img: str) -> np.ndarray:
    """The preprocessed validation image, as the deploy step feeds it."""
    from mmengine.config import Config

    from gpusq_mm.deploy.codebases import build_exporter
    exporter = build_exporter(Config.fromfile(model_cfg),
                              Config.fromfile(deploy_cfg))
    inputs, _ = exporter.load_image(img)
    return inputs.numpy().astype(np.float32)


def _time(graphs: Dict[str, str], inputs: np.ndarray, threads: int,
          repeats: int) -> List[dict]:
    """Interleaved medians of every graph per batch (one row per batch)."""
    from gpusq_mm.deploy.latency import (batch_is_dynamic, runner_for,
                                         time_runners)
    rows = []
    runners = {k: runner_for('ov' if k.startswith('ov_') else 'ort', p,
                             threads) for k, p in graphs.items()}
    dynamic = all(batch_is_dynamic(p) for p in graphs.values()
                  if p.endswith('.onnx'))
    for batch in BATCHES if dynamic else BATCHES[:1]:
        x = np.repeat(inputs, batch, axis=0)
        med = {k: r['median_ms'] for k, r in time_runners(
            runners, x, warmup=10, repeats=repeats).items()}
        row = dict(batch=batch)
        for prefix in ('', 'ov_'):
            if f'{prefix}fp32' in med:
                fp32, int8 = med[f'{prefix}fp32'], med[f'{prefix}int8']
                row.update({f'{prefix}fp32_ms': round(fp32, 3),
                            f'{prefix}int8_ms': round(int8, 3),
                            f'{prefix}speedup': round(fp32 / int8, 3)})
        rows.append(row)
    return rows

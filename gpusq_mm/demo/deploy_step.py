"""The demo's deploy step: ``tools/deploy.py`` exports the dense model
(FP32) and the GPUSQ model (INT8 Q/DQ, 2:4 weights) and checks each against
PyTorch; then ONNX Runtime times the two deployed graphs (for INT8 the
deploy step's ORT lowering, ``end2end.ort.onnx``) on a real validation
image, interleaved, idle workers not spinning, at batch 1 and (where the
graph's batch is dynamic) batch 8.

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


def deploy_task(task, work: str, dense_ckpt: str, gpusq_ckpt: str,
                skip: bool, threads: int = 2, repeats: int = 30) -> Dict:
    """Deploy the dense and the GPUSQ checkpoint to ONNX Runtime and time
    the two graphs.

    Returns:
        dict: ``status`` ('ok', 'skipped' or 'failed'), and either
        ``reason`` or ``onnx_bytes``, ``parity`` and ``latency`` rows
        (``batch``, ``fp32_ms``, ``int8_ms``, ``speedup``).
    """
    if skip:
        return dict(status='skipped', reason='--skip-deploy given')
    kind = CODEBASE[task.name]
    cfgs = osp.join(REPO, 'configs', 'deploy', kind)
    demo = osp.join(REPO, 'configs', 'gpusq', 'demo')
    img = sorted(glob.glob(osp.join(task.data_root, '**', '*.jpg'),
                           recursive=True))[-1]
    out, onnx = {}, {}
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
                     f'[{task.name}] deploy {label}')
            with open(osp.join(wd, 'report.json')) as f:
                out[label] = json.load(f)
            # the graph ONNX Runtime is meant to run: the deploy step's
            # ORT lowering of the Q/DQ graph where it wrote one
            onnx[label] = out[label].get('ort_lowering', {}).get(
                'onnx', osp.join(wd, 'end2end.onnx'))
        inputs = _example_input(osp.join(cfgs, f'{kind}_onnxruntime_int8.py'),
                                osp.join(demo, task.gpusq_cfg), img)
        latency = _time(onnx, inputs, threads, repeats)
    except (ToolError, OSError, KeyError, RuntimeError) as e:
        return dict(status='failed', reason=str(e)[:2000])
    return dict(status='ok', input_shape=list(inputs.shape[1:]),
                threads=threads, repeats=repeats, latency=latency,
                graphs={k: osp.basename(p) for k, p in onnx.items()},
                onnx_bytes={k: _onnx_bytes(osp.dirname(p))
                            for k, p in onnx.items()},
                parity={k: v.get('parity') for k, v in out.items()})


def _example_input(deploy_cfg: str, model_cfg: str, img: str) -> np.ndarray:
    """The preprocessed validation image, as the deploy step feeds it."""
    from mmengine.config import Config

    from gpusq_mm.deploy.codebases import build_exporter
    exporter = build_exporter(Config.fromfile(model_cfg),
                              Config.fromfile(deploy_cfg))
    inputs, _ = exporter.load_image(img)
    return inputs.numpy().astype(np.float32)


def _time(onnx: Dict[str, str], inputs: np.ndarray, threads: int,
          repeats: int) -> List[dict]:
    from gpusq_mm.deploy.latency import batch_is_dynamic, time_onnx
    rows = []
    dynamic = all(batch_is_dynamic(p) for p in onnx.values())
    for batch in BATCHES if dynamic else BATCHES[:1]:
        x = np.repeat(inputs, batch, axis=0)
        res = time_onnx(onnx, x, threads=threads, repeats=repeats,
                        spinning=False)
        fp32, int8 = res['fp32']['median_ms'], res['int8']['median_ms']
        rows.append(dict(batch=batch, fp32_ms=round(fp32, 3),
                         int8_ms=round(int8, 3),
                         speedup=round(fp32 / int8, 3)))
    return rows

"""Per-operator time of a graph on ONNX Runtime (its profiler) and
OpenVINO (its per-layer performance counters): where the time goes outside
the int8 GEMMs (``tools/analysis/benchmark_onnx.py --profile``)."""
import json
import os
import tempfile
from typing import Dict, List

import numpy as np


def _rows(totals: Dict[tuple, List[float]], runs: int) -> List[dict]:
    whole = sum(ms for ms, _ in totals.values()) or 1.0
    rows = [dict(op=k[0], kernel=k[1], count=n // runs, ms=ms / runs,
                 share=ms / whole) for k, (ms, n) in totals.items()]
    return sorted(rows, key=lambda r: -r['ms'])


def profile_ort(path: str, inputs: np.ndarray, threads: int = 2,
                runs: int = 10, warmup: int = 3,
                spin: str = 'run') -> List[dict]:
    """Mean time per operator type of ``path`` on ONNX Runtime's CPU
    provider (``spin``: :data:`.exporter.SPIN_MODES`), largest first.

    Returns:
        list[dict]: ``op``, ``kernel`` (the execution provider), ``count``
        (nodes per run), ``ms`` (per run) and ``share`` of the summed node
        time.
    """
    import onnxruntime as ort

    from .exporter import ort_session_options
    opts = ort_session_options(threads, spin)
    sess = ort.InferenceSession(path, opts,
                                providers=['CPUExecutionProvider'])
    feed = {sess.get_inputs()[0].name: inputs}
    for _ in range(warmup):
        sess.run(None, feed)
    with tempfile.TemporaryDirectory() as tmp:
        opts.enable_profiling = True
        opts.profile_file_prefix = os.path.join(tmp, 'ort')
        sess = ort.InferenceSession(path, opts,
                                    providers=['CPUExecutionProvider'])
        for _ in range(warmup + runs):
            sess.run(None, feed)
        with open(sess.end_profiling()) as f:
            events = json.load(f)
    starts = sorted(e['ts'] for e in events if e.get('name') == 'model_run')
    first = starts[warmup]
    totals: Dict[tuple, List[float]] = {}
    for e in events:
        if e.get('cat') == 'Node' and e['name'].endswith('_kernel_time') \
                and e['ts'] >= first:
            key = (e['args']['op_name'], e['args'].get('provider', ''))
            entry = totals.setdefault(key, [0.0, 0])
            entry[0] += e['dur'] / 1e3
            entry[1] += 1
    return _rows(totals, runs)


def profile_ov(path: str, inputs: np.ndarray, threads: int = 2,
               runs: int = 10, warmup: int = 3) -> List[dict]:
    """Mean time per (layer type, kernel) of ``path`` on OpenVINO's CPU
    plugin (FP32 inference precision), from its performance counters; the
    same row keys as :func:`profile_ort` (``kernel`` names the precision,
    e.g. ``brgemm_avx512_amx_i8``)."""
    from .openvino import OVRunner, compile_ir
    runner = OVRunner(compile_ir(path, threads, perf_counters=True))
    for _ in range(warmup):
        runner(inputs)
    totals: Dict[tuple, List[float]] = {}
    for _ in range(runs):
        runner(inputs)
        for info in runner.request.profiling_info:
            if info.status.name != 'EXECUTED':
                continue
            entry = totals.setdefault((info.node_type, info.exec_type),
                                      [0.0, 0])
            entry[0] += info.real_time.total_seconds() * 1e3
            entry[1] += 1
    return _rows(totals, runs)


def profile_table(rows: List[dict], top: int = 12) -> List[str]:
    """Markdown rows of the ``top`` costliest operators."""
    lines = ['| op | kernel | nodes | ms | share |', '|---|---|---|---|---|']
    for r in rows[:top]:
        lines.append(f"| {r['op']} | {r['kernel']} | {r['count']} | "
                     f"{r['ms']:.2f} | {100 * r['share']:.1f}% |")
    return lines

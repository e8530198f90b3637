"""CPU latency of FP32 and INT8 graphs on ONNX Runtime and OpenVINO, timed
interleaved in one process (``tools/analysis/benchmark_onnx.py``).

Labels are ``<runtime>_<graph>``: runtime ``ort`` (ONNX Runtime CPU
provider) or ``ov`` (OpenVINO CPU plugin, FP32 inference precision);
graph ``fp32``, ``gpusq_int8`` (our Q/DQ export), ``gpusq_int8_lowered``
(its ORT lowering, ORT only) or ``qs_<setting>`` (ONNX Runtime's
``quantize_static`` peer, see :mod:`.onnxruntime.peers`). Each peer is
reported in its best setting per runtime.
"""
from typing import Callable, Dict, List, Tuple

import numpy as np

from .codebases.base import cosine
from .latency import runner_for, time_runners
from .onnxruntime.peers import best_of


def build_runners(graphs: Dict[str, Tuple[str, str]], threads: int,
                  spin: str) -> Tuple[Dict[str, Callable], dict]:
    """A runner per graph; graphs a runtime cannot load are left out.

    Args:
        graphs (dict): ``{label: (runtime, path)}``, runtime 'ort' or 'ov'.
        threads (int): Threads of every runtime.
        spin (str): How ONNX Runtime's idle workers wait
            (:data:`.exporter.SPIN_MODES`).

    Returns:
        tuple: ``{label: runner}`` and ``{label: why it was left out}``.
    """
    runners, skipped = {}, {}
    for label, (runtime, path) in graphs.items():
        try:
            runners[label] = runner_for(runtime, path, threads, spin)
        except Exception as e:  # an op the runtime does not convert
            skipped[label] = f'{type(e).__name__}: {str(e)[:300]}'
    return runners, skipped


def summarize(timed: Dict[str, dict], reference: str = 'ort_fp32') -> dict:
    """Medians, speed-ups and agreement of a :func:`.latency.time_runners`
    result.

    Returns:
        dict: ``median_ms``, ``speedup_vs_fp32`` (vs the same runtime's
        FP32), ``speedup_vs_ort_fp32``, ``cosine_vs_fp32`` (first output vs
        ``reference``'s; NaN for all-zero outputs), ``peers`` (best
        ``quantize_static`` setting per runtime) and ``targets`` (the
        ratios the issue's acceptance reads).
    """
    med = {k: r['median_ms'] for k, r in timed.items()}
    ref = timed[reference]['outputs'][0]
    peers = {rt: best_of(med, f'{rt}_qs_') for rt in ('ort', 'ov')}

    def ratio(slow: str, fast: str) -> float:
        return med[slow] / med[fast] if slow in med and fast in med \
            else float('nan')

    return dict(
        median_ms=med,
        speedup_vs_fp32={k: ratio(k.split('_')[0] + '_fp32', k)
                         for k in med},
        speedup_vs_ort_fp32={k: ratio(reference, k) for k in med},
        cosine_vs_fp32={k: cosine(ref, r['outputs'][0])
                        for k, r in timed.items()},
        peers=peers,
        targets=dict(
            ov_int8_vs_ov_fp32=ratio('ov_fp32', 'ov_gpusq_int8'),
            ov_int8_vs_ov_peer=ratio(peers['ov'], 'ov_gpusq_int8'),
            ort_lowered_vs_ort_fp32=ratio('ort_fp32',
                                          'ort_gpusq_int8_lowered'),
            ort_lowered_vs_ort_peer=ratio(peers['ort'],
                                          'ort_gpusq_int8_lowered')))


def run_benchmark(graphs: Dict[str, Tuple[str, str]], inputs: np.ndarray,
                  threads: int = 2, warmup: int = 5, repeats: int = 20,
                  spin: str = 'run') -> dict:
    """Time every graph interleaved and summarize (see :func:`summarize`);
    ``times_ms``, ``skipped`` and ``outputs`` (each graph's first outputs)
    are added."""
    runners, skipped = build_runners(graphs, threads, spin)
    timed = time_runners(runners, inputs, warmup, repeats)
    result = summarize(timed)
    result.update(skipped=skipped,
                  times_ms={k: r['times_ms'] for k, r in timed.items()},
                  outputs={k: r['outputs'] for k, r in timed.items()})
    return result


def table(result: dict) -> List[str]:
    """Markdown rows: runtime, graph, median, speed-ups, cosine."""
    names = dict(ort='ONNX Runtime', ov='OpenVINO')
    lines = ['| runtime | graph | median ms | vs same-runtime FP32 | '
             'vs ORT FP32 | cosine vs FP32 |', '|---|---|---|---|---|---|']
    best = set(result['peers'].values())
    for k, ms in result['median_ms'].items():
        runtime, graph = k.split('_', 1)
        mark = ' (best peer)' if k in best else ''
        lines.append(
            f"| {names.get(runtime, runtime)} | {graph}{mark} | {ms:.2f} | "
            f"{result['speedup_vs_fp32'][k]:.2f}x | "
            f"{result['speedup_vs_ort_fp32'][k]:.2f}x | "
            f"{result['cosine_vs_fp32'][k]:.4f} |")
    return lines

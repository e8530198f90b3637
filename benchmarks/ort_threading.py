"""Which ONNX Runtime wait mode times a session the way users run it.

``tools/analysis/benchmark_onnx.py`` times several sessions interleaved in
one process. How ORT's idle intra-op workers wait decides what that measures
(:data:`gpusq_mm.deploy.exporter.SPIN_MODES`). This script times the ONNX
Runtime graphs of one ``benchmark_onnx.py --work-dir`` run

- each **alone**, in its own process, with ORT's default options (what a
  deployed application with one session gets), and
- **interleaved** in one process under each wait mode,

and prints JSON, then a table of medians and speed-ups over the FP32 graph.
A mode whose speed-ups differ from the lone sessions' misreports them::

    python tools/analysis/benchmark_onnx.py \\
        mmpretrain::deit/deit-small_4xb256_in1k.py \\
        --work-dir work_dirs/bench_deit
    python benchmarks/ort_threading.py work_dirs/bench_deit [--repeats 20]
"""
import argparse
import glob
import json
import os.path as osp
import subprocess
import sys
from typing import Dict, List

import numpy as np

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
GRAPHS = ('fp32', 'gpusq_int8', 'gpusq_int8_lowered')


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('work_dir', help='a benchmark_onnx.py --work-dir')
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--warmup', type=int, default=5)
    parser.add_argument('--repeats', type=int, default=20)
    parser.add_argument('--child', nargs=2, metavar=('MODE', 'GRAPHS'),
                        help=argparse.SUPPRESS)
    return parser.parse_args()


def graphs_of(work_dir: str) -> Dict[str, str]:
    """``{label: path}``: our graphs and ORT's ``quantize_static`` ones."""
    paths = {g: osp.join(work_dir, f'{g}.onnx') for g in GRAPHS}
    missing = [p for p in paths.values() if not osp.isfile(p)]
    if missing:
        raise SystemExit(f'{missing} not found: run tools/analysis/'
                         f'benchmark_onnx.py --work-dir {work_dir} first')
    for p in sorted(glob.glob(osp.join(work_dir, 'ort_qs_*.onnx'))):
        paths[osp.basename(p)[4:-5]] = p
    return paths


def child(args, mode: str, labels: List[str]) -> None:
    """Time ``labels`` interleaved in this process; print medians (JSON)."""
    sys.path.insert(0, REPO)
    from gpusq_mm.deploy.latency import ort_runner, time_runners
    with open(osp.join(args.work_dir, 'benchmark.json')) as f:
        shape = json.load(f)['input_shape']
    x = np.random.RandomState(0).randn(*shape).astype(np.float32)
    paths = graphs_of(args.work_dir)
    runners = {k: ort_runner(paths[k], args.threads, mode) for k in labels}
    timed = time_runners(runners, x, args.warmup, args.repeats)
    print(json.dumps({k: r['median_ms'] for k, r in timed.items()}))


def measure(args, mode: str, labels: List[str]) -> Dict[str, float]:
    cmd = [sys.executable, __file__, args.work_dir, '--threads',
           str(args.threads), '--warmup', str(args.warmup), '--repeats',
           str(args.repeats), '--child', mode, ','.join(labels)]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f'{" ".join(cmd)} failed:\n{out.stderr[-2000:]}')
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    args = parse_args()
    if args.child:
        return child(args, args.child[0], args.child[1].split(','))
    labels = list(graphs_of(args.work_dir))
    rows = {'alone (ORT defaults)': {}}
    for label in labels:  # one process per graph, spinning as ORT does
        rows['alone (ORT defaults)'].update(measure(args, 'always', [label]))
    for mode in ('run', 'never', 'always'):
        rows[f'interleaved, spin={mode}'] = measure(args, mode, labels)
    result = dict(work_dir=args.work_dir, threads=args.threads,
                  repeats=args.repeats, median_ms=rows,
                  speedup_vs_fp32={m: {k: r['fp32'] / v for k, v in r.items()}
                                   for m, r in rows.items()})
    print(json.dumps(result, indent=2))
    head = ' | '.join(labels)
    lines = [f'| measurement | {head} |',
             '|---|' + '---|' * len(labels)]
    for m, r in rows.items():
        cells = ' | '.join(f"{r[k]:.2f} ({r['fp32'] / r[k]:.2f}x)"
                           for k in labels)
        lines.append(f'| {m} | {cells} |')
    print('\n'.join(lines))


if __name__ == '__main__':
    main()

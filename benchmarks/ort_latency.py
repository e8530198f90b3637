"""CPU latency on ONNX Runtime and OpenVINO, FP32 vs INT8, for DeiT-S and
Swin-T at 224x224, batch 1 and 8.

Each (model, batch) cell is one run of ``tools/analysis/benchmark_onnx.py
--spin SPIN`` (default ``run``): the FP32 export and our INT8 Q/DQ 2:4 export
on both runtimes, our export lowered for ONNX Runtime, and ONNX Runtime's own
``quantize_static`` of the FP32 export in each of U8S8/S8S8 x QDQ/QOperator on
both runtimes (the best setting per runtime is the peer), timed interleaved in
one process after a warm-up, median of ``--repeats``. The models are
mmpretrain's DeiT-S and Swin-T with random weights (all-zero heads
re-initialised), one-shot 2:4 masks and max calibration (latency does not
depend on the values). Prints JSON, then a markdown table::

    python benchmarks/ort_latency.py [--models deit-small swin-tiny]
        [--batches 1 8] [--threads 2] [--repeats 20] [--spin run]
        [--work-dir DIR]
"""
import argparse
import json
import os
import os.path as osp
import subprocess
import sys
from typing import Dict, List

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = {
    'deit-small': 'mmpretrain::deit/deit-small_4xb256_in1k.py',
    'swin-tiny': 'mmpretrain::swin_transformer/swin-tiny_16xb64_in1k.py',
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--models', nargs='+', default=list(CONFIGS),
                        choices=list(CONFIGS))
    parser.add_argument('--batches', nargs='+', type=int, default=[1, 8])
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--warmup', type=int, default=5)
    parser.add_argument('--repeats', type=int, default=20)
    parser.add_argument('--peers', nargs='*', default=None,
                        help='quantize_static settings (default: all four)')
    parser.add_argument('--spin', default='run',
                        choices=['run', 'never', 'always'],
                        help='how idle ONNX Runtime workers wait (see '
                        'benchmark_onnx.py --help)')
    parser.add_argument('--work-dir', default='work_dirs/ort_latency')
    args = parser.parse_args()
    if args.repeats < 20:
        parser.error('--repeats must be >= 20 (a median of fewer runs is '
                     'too noisy to report)')
    return args


def run_cell(model: str, batch: int, args) -> Dict:
    """One benchmark_onnx run; returns its benchmark.json."""
    out = osp.join(args.work_dir, f'{model}_b{batch}')
    cmd = [sys.executable,
           osp.join(REPO, 'tools', 'analysis', 'benchmark_onnx.py'),
           CONFIGS[model], '--batch', str(batch), '--shape', '224', '224',
           '--threads', str(args.threads), '--warmup', str(args.warmup),
           '--repeats', str(args.repeats), '--spin', args.spin,
           '--work-dir', out]
    if args.peers is not None:
        cmd += ['--peers', *args.peers]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f'{" ".join(cmd)} failed:\n{proc.stderr[-3000:]}')
    with open(osp.join(out, 'benchmark.json')) as f:
        result = json.load(f)
    result.pop('times_ms', None)
    return result


def table(rows: List[Dict]) -> str:
    """One line per (model, batch): median ms (speed-up vs the same
    runtime's FP32) of each runtime's FP32, our INT8 and best peer."""
    lines = ['| model | batch | ORT FP32 ms | ORT INT8 lowered (ours) | '
             'ORT best quantize_static | OV FP32 ms | OV INT8 (ours) | '
             'OV on ORT peer | OV INT8 vs OV peer | cosine INT8 vs FP32 |',
             '|---|---|---|---|---|---|---|---|---|---|']
    for r in rows:
        ms, up, peers = r['median_ms'], r['speedup_vs_fp32'], r['peers']

        def cell(k: str) -> str:
            name = f" {k.split('_qs_')[1]}" if '_qs_' in k else ''
            return f'{ms[k]:.1f} ({up[k]:.2f}x{name})'
        lines.append(
            f"| {r['model']} | {r['input_shape'][0]} | {ms['ort_fp32']:.1f}"
            f" | {cell('ort_gpusq_int8_lowered')} | {cell(peers['ort'])} | "
            f"{ms['ov_fp32']:.1f} | {cell('ov_gpusq_int8')} | "
            f"{cell(peers['ov'])} | "
            f"{r['targets']['ov_int8_vs_ov_peer']:.2f}x | "
            f"{r['cosine_vs_fp32']['ov_gpusq_int8']:.4f} |")
    return '\n'.join(lines)


def main() -> None:
    args = parse_args()
    os.makedirs(args.work_dir, exist_ok=True)
    rows = []
    for model in args.models:
        for batch in args.batches:
            print(f'[ort_latency] {model} batch {batch} ...', file=sys.stderr,
                  flush=True)
            rows.append(dict(model=model, **run_cell(model, batch, args)))
    print(json.dumps(dict(threads=args.threads, repeats=args.repeats,
                          spin=args.spin,
                          results=rows), indent=2))
    print(table(rows))


if __name__ == '__main__':
    main()

"""ONNX Runtime CPU latency: FP32 vs our INT8 Q/DQ export (as exported for
TensorRT, and lowered for ONNX Runtime) vs ONNX Runtime's own static
quantizer applied to the FP32 export, measured in one run.

    python tools/analysis/benchmark_onnx.py MODEL_CFG [--checkpoint CKPT] \\
        [--shape 224 224] [--batch 1] [--threads 2] [--repeats 30] \\
        [--work-dir OUT]

MODEL_CFG may be ``mmpretrain::deit/deit-small_4xb256_in1k.py``. Without a
checkpoint the model keeps its random init and gets one-shot 2:4 masks and
max calibration on random inputs (enough for speed, not for accuracy).
Timings are interleaved (FP32, ours, ours lowered, peer, FP32, ...) after a
warm-up; ratios are FP32 median / variant median. ``gpusq_int8`` is the
explicit Q/DQ graph that TensorRT gets; ``gpusq_int8_ort`` is the same graph
after :func:`gpusq_mm.deploy.ort_lowering.lower_for_ort`, the file the
``onnxruntime`` deploy backend runs (same outputs, see ``max_rel_diff``).
Writes ``OUT/benchmark.json`` and ``OUT/benchmark.md``.
"""
import argparse
import json
import os
import os.path as osp
import platform
import tempfile

import torch
from mmengine.config import Config

import gpusq_mm  # noqa: F401
from gpusq_mm.deploy.codebases.base import cosine
from gpusq_mm.deploy.exporter import export_onnx
from gpusq_mm.deploy.latency import time_onnx
from gpusq_mm.deploy.loader import build_task_model, load_deploy_model
from gpusq_mm.deploy.ort_lowering import (lower_file, lowering_counts,
                                          max_rel_diff)
from gpusq_mm.deploy.qdq import build_deploy_model
from gpusq_mm.deploy.quick import quick_gpusq


class _Tensor(torch.nn.Module):

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x):
        out = self.model(x, mode='tensor')
        return (out[-1] if isinstance(out, (tuple, list)) else out, )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('model_cfg')
    parser.add_argument('--checkpoint', default=None,
                        help='GPUSQ checkpoint (default: random init + '
                        'one-shot 2:4 and calibration)')
    parser.add_argument('--scope', default='mmpretrain')
    parser.add_argument('--shape', type=int, nargs=2, default=[224, 224],
                        metavar=('H', 'W'))
    parser.add_argument('--batch', type=int, default=1)
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--warmup', type=int, default=10)
    parser.add_argument('--repeats', type=int, default=30)
    parser.add_argument('--calib-batches', type=int, default=4)
    parser.add_argument('--no-spin', action='store_true',
                        help='idle ORT workers sleep instead of spinning: '
                        'on a machine with no more cores than --threads, '
                        'the spinning workers of the session timed before '
                        'slow down the next one')
    parser.add_argument('--work-dir', default='work_dirs/benchmark_onnx')
    return parser.parse_args()


def load_config(path: str) -> Config:
    """``Config.fromfile`` that also takes ``package::path`` names."""
    if '::' not in path:
        return Config.fromfile(path)
    with tempfile.NamedTemporaryFile('w', suffix='.py', delete=False) as f:
        f.write(f'_base_ = {path!r}\n')
    try:
        return Config.fromfile(f.name)
    finally:
        os.unlink(f.name)


def build_models(args, x: torch.Tensor):
    """The FP32 model (2:4 weights, no quantization) and the deploy one."""
    cfg = load_config(args.model_cfg)
    if args.checkpoint:
        loaded = load_deploy_model(cfg, args.checkpoint, args.scope)
        model, sparse = loaded.model, loaded.sparse_params
        masks = loaded.masks
    else:
        torch.manual_seed(0)
        model = build_task_model(cfg, args.scope, init_weights=True)
        calib = [torch.randn_like(x) for _ in range(args.calib_batches)]
        sparse, masks = quick_gpusq(model, calib)
    deploy, info = build_deploy_model(model, sparse, masks)
    from gpusq_mm.quantization import range_holders
    for holder in range_holders(model).values():
        holder.quant_state = 'off'  # the FP32 reference: same weights
    return model, deploy, info


def quantize_peer(fp32: str, out: str, x: torch.Tensor, n: int) -> None:
    """ONNX Runtime's QDQ S8S8 per-channel static quantization."""
    from onnxruntime.quantization import (CalibrationDataReader, QuantFormat,
                                          QuantType, quantize_static)

    class Reader(CalibrationDataReader):

        def __init__(self) -> None:
            g = torch.Generator().manual_seed(1)
            self.data = iter([{'input': torch.randn(
                x.shape, generator=g).numpy()} for _ in range(n)])

        def get_next(self):
            return next(self.data, None)

    quantize_static(fp32, out, Reader(), quant_format=QuantFormat.QDQ,
                    per_channel=True, activation_type=QuantType.QInt8,
                    weight_type=QuantType.QInt8,
                    op_types_to_quantize=['MatMul', 'Gemm', 'Conv'])


def main() -> None:
    args = parse_args()
    os.makedirs(args.work_dir, exist_ok=True)
    torch.set_num_threads(args.threads)
    x = torch.randn(args.batch, 3, *args.shape,
                    generator=torch.Generator().manual_seed(0))
    model, deploy, info = build_models(args, x)
    paths = {k: osp.join(args.work_dir, f'{k}.onnx')
             for k in ('fp32', 'gpusq_int8', 'gpusq_int8_ort',
                       'ort_quantize_static')}
    export_onnx(_Tensor(model), x, paths['fp32'], ['output'])
    export_onnx(_Tensor(deploy), x, paths['gpusq_int8'], ['output'])
    lowering = lower_file(paths['gpusq_int8'], paths['gpusq_int8_ort'])
    quantize_peer(paths['fp32'], paths['ort_quantize_static'], x,
                  args.calib_batches)
    run = time_onnx(paths, x.numpy(), args.threads, args.warmup,
                    args.repeats, spinning=not args.no_spin)
    med = {k: r['median_ms'] for k, r in run.items()}
    ref = run['fp32']['outputs'][0]
    result = dict(
        model_cfg=args.model_cfg, checkpoint=args.checkpoint,
        input_shape=list(x.shape), threads=args.threads,
        spinning=not args.no_spin,
        warmup=args.warmup, repeats=args.repeats,
        machine=dict(cpu=platform.processor() or platform.machine(),
                     cores=os.cpu_count()),
        versions=_versions(), quantized_layers=len(info.quantized),
        sparse_layers=len(info.sparse), median_ms=med,
        speedup_vs_fp32={k: med['fp32'] / v for k, v in med.items()},
        cosine_vs_fp32={k: cosine(ref, r['outputs'][0])
                        for k, r in run.items()},
        ort_lowering=dict(
            **lowering_counts(lowering),
            max_rel_diff=max_rel_diff(run['gpusq_int8']['outputs'][0],
                                      run['gpusq_int8_ort']['outputs'][0])),
        times_ms={k: r['times_ms'] for k, r in run.items()})
    with open(osp.join(args.work_dir, 'benchmark.json'), 'w') as f:
        json.dump(result, f, indent=2)
    table = _table(result)
    with open(osp.join(args.work_dir, 'benchmark.md'), 'w') as f:
        f.write(table)
    print(table)


def _versions() -> dict:
    import onnx
    import onnxruntime
    return dict(torch=torch.__version__, onnx=onnx.__version__,
                onnxruntime=onnxruntime.__version__)


def _table(r: dict) -> str:
    lines = [f"ONNX Runtime CPU, {r['model_cfg']}, input {r['input_shape']},"
             f" {r['threads']} threads"
             f"{'' if r['spinning'] else ' (no spinning)'}, median of "
             f"{r['repeats']} (interleaved)", '',
             '| export | median ms | speedup vs FP32 | cosine vs FP32 |',
             '|---|---|---|---|']
    for k, ms in r['median_ms'].items():
        lines.append(f'| {k} | {ms:.2f} | {r["speedup_vs_fp32"][k]:.2f}x | '
                     f'{r["cosine_vs_fp32"][k]:.4f} |')
    low = r['ort_lowering']
    lines += ['', f"gpusq_int8_ort = gpusq_int8 lowered for ONNX Runtime "
              f"({low['integer_matmuls']} int8 MatMulIntegerToFloat, of "
              f"them {low['pointwise_to_matmul']} 1x1 Conv, "
              f"{low['conv_weights_folded']} Conv weight DQ folded, "
              f"{low['clips_moved']} activation Clips on uint8, "
              f"{low['clips_dropped']} dropped, "
              f"{low['clips_to_max']} Clip -> Max, "
              f"{low['layout_reshapes']} layout transposes folded); max "
              f"relative output difference to gpusq_int8: "
              f"{low['max_rel_diff']:.2e}"]
    return '\n'.join(lines) + '\n'


if __name__ == '__main__':
    main()

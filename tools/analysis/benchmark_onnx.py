"""CPU latency on ONNX Runtime and OpenVINO: FP32 vs our INT8 Q/DQ export
vs ONNX Runtime's own static quantizer (in each of its settings), all timed
interleaved in one run.

    python tools/analysis/benchmark_onnx.py MODEL_CFG [--checkpoint CKPT] \\
        [--shape 224 224] [--batch 1] [--threads 2] [--repeats 20] \\
        [--spin run|never|always] [--peers u8s8_qdq s8s8_qdq ...] \\
        [--work-dir OUT]

MODEL_CFG may be ``mmpretrain::deit/deit-small_4xb256_in1k.py``. Without a
checkpoint the model keeps its random init, its all-zero layers (the
zero-initialised ViT/DeiT heads) are re-initialised so that the outputs
compared are not zeros, and it gets one-shot 2:4 masks and max calibration
on random inputs (enough for speed, not for accuracy).

Our INT8 graph is written by the steps of ``tools/deploy.py``
(:class:`gpusq_mm.deploy.pipeline.DeployPipeline`: load, Q/DQ folding,
export, 2:4 and Q/DQ verification, ORT lowering) with ``--deploy-cfg``
(default: the classification onnxruntime INT8 config, batch made static).
Graphs (see :mod:`gpusq_mm.deploy.cpu_benchmark` for the labels): the FP32
export and our INT8 Q/DQ export on both runtimes (OpenVINO through the IR
the ``openvino`` deploy backend writes, FP32 weights, FP32 inference
precision), our export lowered for ONNX Runtime (the file the
``onnxruntime`` backend runs), and ONNX Runtime's ``quantize_static`` of
the FP32 export in U8S8/S8S8 x QDQ/QOperator on both runtimes; the table
marks the best peer per runtime. Ratios are medians of interleaved runs
(after a warm-up); ORT's workers spin only within a run by default
(``--spin``, :data:`gpusq_mm.deploy.exporter.SPIN_MODES`). Writes
``OUT/benchmark.json`` and ``OUT/benchmark.md``.
"""
import argparse
import json
import os
import os.path as osp
import platform
import tempfile
from typing import Tuple

import torch
from mmengine.config import Config

import gpusq_mm  # noqa: F401
from gpusq_mm.deploy.codebases import build_exporter
from gpusq_mm.deploy.cpu_benchmark import run_benchmark, table
from gpusq_mm.deploy.exporter import SPIN_MODES, export_onnx
from gpusq_mm.deploy.loader import LoadedModel, build_task_model
from gpusq_mm.deploy.onnxruntime.lowering import max_rel_diff
from gpusq_mm.deploy.onnxruntime.peers import (PEER_SETTINGS, quantize_peers,
                                               random_calib)
from gpusq_mm.deploy.pipeline import DeployPipeline
from gpusq_mm.oneshot import quick_gpusq, reinit_zero_layers
from gpusq_mm.quantization import disable_quant
from gpusq_mm.resources import resolve_config

DEPLOY_CFG = 'configs/deploy/classification/classification_onnxruntime_int8.py'


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('model_cfg')
    parser.add_argument('--checkpoint', default=None,
                        help='GPUSQ checkpoint (default: random init + '
                        'one-shot 2:4 and calibration)')
    parser.add_argument('--scope', default='mmpretrain')
    parser.add_argument('--deploy-cfg', default=DEPLOY_CFG,
                        help='onnxruntime deploy config whose steps write '
                        'our INT8 graph (dynamic axes are dropped: every '
                        'graph is timed at the traced batch)')
    parser.add_argument('--shape', type=int, nargs=2, default=[224, 224],
                        metavar=('H', 'W'))
    parser.add_argument('--batch', type=int, default=1)
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--warmup', type=int, default=10)
    parser.add_argument('--repeats', type=int, default=20)
    parser.add_argument('--calib-batches', type=int, default=4)
    parser.add_argument('--spin', choices=SPIN_MODES, default='run',
                        help="how idle ORT workers wait: 'run' (default) "
                        'spin within a run, as a lone session with ORT\'s '
                        'defaults does, and stop after it, so the session '
                        "timed next is not slowed; 'never' sleep whenever "
                        "idle; 'always' ORT's default (sessions timed in "
                        'turn on few cores slow each other down)')
    parser.add_argument('--no-spin', dest='spin', action='store_const',
                        const='never', help='same as --spin never')
    parser.add_argument('--peers', nargs='*', default=list(PEER_SETTINGS),
                        choices=list(PEER_SETTINGS),
                        help='quantize_static settings of the peer')
    parser.add_argument('--profile', action='store_true',
                        help='also write per-operator times of the INT8 '
                        'graphs (ORT profiler, OpenVINO perf counters) to '
                        'profile.json / profile.md')
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


def build_pipeline(args, x: torch.Tensor) -> Tuple[DeployPipeline, list]:
    """Run the deploy steps that write our INT8 graphs, on batch ``x``:
    load the checkpoint (or build the model and give it one-shot 2:4 masks
    and ranges), fold it into Q/DQ modules, export ``gpusq_int8.onnx``,
    verify its 2:4 weights and Q/DQ pairs, lower it for ONNX Runtime.

    Returns:
        tuple: The pipeline after those steps and the all-zero layers that
        were re-initialised (none for a checkpoint).
    """
    cfg = load_config(args.model_cfg)
    deploy_cfg = Config.fromfile(resolve_config(args.deploy_cfg))
    if deploy_cfg.backend_config.type != 'onnxruntime':
        raise ValueError(f'--deploy-cfg must be an onnxruntime deploy '
                         f'config, got {deploy_cfg.backend_config.type!r}')
    # static shapes: every graph is timed at the traced batch
    deploy_cfg.onnx_config.update(dynamic_axes=None,
                                  save_file='gpusq_int8.onnx')
    pipe = DeployPipeline(deploy_cfg, cfg, args.checkpoint or '', None,
                          args.work_dir)
    pipe.inputs = x
    reinit: list = []
    if args.checkpoint:
        pipe.load_checkpoint()
    else:
        torch.manual_seed(0)
        model = build_task_model(cfg, args.scope, init_weights=True)
        reinit = reinit_zero_layers(model)
        calib = [torch.randn_like(x) for _ in range(args.calib_batches)]
        sparse, masks = quick_gpusq(model, calib)
        pipe.exporter = build_exporter(cfg, deploy_cfg)
        pipe.loaded = LoadedModel(model=model.eval(), gpusq={},
                                  sparse_params=sparse, masks=masks)
    for step in (pipe.build_deploy_model, pipe.export_onnx,
                 pipe.verify_onnx, pipe.lower_for_ort):
        step()
    return pipe, reinit


def export_graphs(args, pipe: DeployPipeline, x: torch.Tensor) -> dict:
    """Beside the pipeline's graphs, write the FP32 export (the same
    weights, quantizers off), the OpenVINO IRs and ONNX Runtime's peers;
    returns ``{label: (runtime, path)}``."""
    from gpusq_mm.deploy.openvino import convert_to_ir
    path = {k: osp.join(args.work_dir, f'{k}.onnx')
            for k in ('fp32', 'gpusq_int8', 'gpusq_int8_lowered')}
    os.replace(pipe.ort_path, path['gpusq_int8_lowered'])
    model = pipe.loaded.model
    disable_quant(model)
    export_onnx(pipe.exporter.export_module(model), x, path['fp32'],
                pipe.exporter.output_names)
    graphs = {f'ort_{k}': ('ort', p) for k, p in path.items()}
    for k in ('fp32', 'gpusq_int8'):  # as the openvino deploy writes them
        xml = osp.join(args.work_dir, f'{k}.xml')
        convert_to_ir(path[k], xml, compress_to_fp16=False)
        graphs[f'ov_{k}'] = ('ov', xml)
    calib = random_calib(tuple(x.shape), args.calib_batches)
    for label, p in quantize_peers(path['fp32'], args.work_dir, calib,
                                   args.peers).items():
        graphs[label] = ('ort', p)
        graphs['ov' + label[3:]] = ('ov', p)
    return graphs


def main() -> None:
    args = parse_args()
    os.makedirs(args.work_dir, exist_ok=True)
    torch.set_num_threads(args.threads)
    x = torch.randn(args.batch, 3, *args.shape,
                    generator=torch.Generator().manual_seed(0))
    pipe, reinit = build_pipeline(args, x)
    graphs = export_graphs(args, pipe, x)
    run = run_benchmark(graphs, x.numpy(), args.threads, args.warmup,
                        args.repeats, spin=args.spin)
    outputs = run.pop('outputs')
    lowering = {k: v for k, v in pipe.report['ort_lowering'].items()
                if k != 'onnx'}
    lowering['max_rel_diff'] = max_rel_diff(
        outputs['ort_gpusq_int8'][0], outputs['ort_gpusq_int8_lowered'][0])
    info = pipe.info
    result = dict(
        model_cfg=args.model_cfg, checkpoint=args.checkpoint,
        input_shape=list(x.shape), threads=args.threads,
        spin=args.spin, warmup=args.warmup, repeats=args.repeats,
        machine=_machine(), versions=_versions(),
        quantized_layers=len(info.quantized), sparse_layers=len(info.sparse),
        reinitialised_zero_layers=reinit,
        graphs={k: osp.basename(p) for k, (_, p) in graphs.items()},
        ort_lowering=lowering, **run)
    with open(osp.join(args.work_dir, 'benchmark.json'), 'w') as f:
        json.dump(result, f, indent=2)
    if args.profile:
        write_profiles(args, graphs, x.numpy())
    table = _table(result)
    with open(osp.join(args.work_dir, 'benchmark.md'), 'w') as f:
        f.write(table)
    print(table)


def write_profiles(args, graphs: dict, inputs) -> None:
    """Per-operator profiles of FP32 and our INT8 graph on each runtime
    (``profile.json``, ``profile.md``)."""
    from gpusq_mm.deploy.op_profile import (profile_ort, profile_ov,
                                            profile_table)
    labels = ('ort_fp32', 'ort_gpusq_int8_lowered', 'ov_fp32',
              'ov_gpusq_int8')
    profiles = {k: profile_ort(graphs[k][1], inputs, args.threads,
                               spin=args.spin) if graphs[k][0] == 'ort'
                else profile_ov(graphs[k][1], inputs, args.threads)
                for k in labels}
    with open(osp.join(args.work_dir, 'profile.json'), 'w') as f:
        json.dump(profiles, f, indent=2)
    lines = []
    for k, rows in profiles.items():
        lines += [f'### {k} ({sum(r["ms"] for r in rows):.2f} ms summed)',
                  '', *profile_table(rows), '']
    with open(osp.join(args.work_dir, 'profile.md'), 'w') as f:
        f.write('\n'.join(lines))
    print('\n'.join(lines))


def _machine() -> dict:
    flags = ''
    if osp.isfile('/proc/cpuinfo'):
        with open('/proc/cpuinfo') as f:
            flags = next((line for line in f if line.startswith('flags')),
                         '')
    isa = ('avx512_vnni', 'avx512_bf16', 'amx_int8', 'amx_bf16', 'avx_vnni')
    return dict(cpu=platform.processor() or platform.machine(),
                cores=os.cpu_count(),
                isa=[k for k in isa if k in flags.split()])


def _versions() -> dict:
    import onnx
    import onnxruntime
    import openvino
    return dict(torch=torch.__version__, onnx=onnx.__version__,
                onnxruntime=onnxruntime.__version__,
                openvino=openvino.get_version())


def _table(r: dict) -> str:
    t = r['targets']
    peers = {rt: p.split('_qs_')[-1] for rt, p in r['peers'].items() if p}
    lines = [f"CPU latency, {r['model_cfg']}, input {r['input_shape']}, "
             f"{r['threads']} threads"
             f", ORT workers spinning: {r['spin']}, "
             f"median of {r['repeats']} (interleaved)", '', *table(r), '',
             f"best quantize_static setting: ONNX Runtime {peers.get('ort')}"
             f", OpenVINO {peers.get('ov')}",
             f"OpenVINO INT8 (ours) vs OpenVINO FP32: "
             f"{t['ov_int8_vs_ov_fp32']:.2f}x; vs OpenVINO on ORT's peer: "
             f"{t['ov_int8_vs_ov_peer']:.2f}x",
             f"ORT-lowered INT8 (ours) vs ORT FP32: "
             f"{t['ort_lowered_vs_ort_fp32']:.2f}x; vs ORT's best peer: "
             f"{t['ort_lowered_vs_ort_peer']:.2f}x"]
    if r['skipped']:
        lines.append(f"not run: {sorted(r['skipped'])} (the runtime cannot "
                     'load them)')
    low = r['ort_lowering']
    lines += ['', f"gpusq_int8_lowered = gpusq_int8 lowered for ONNX Runtime"
              f" ({low['integer_matmuls']} int8 MatMulIntegerToFloat, of "
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

"""What the demo measures on a GPUSQ checkpoint, and its report files:
``report.json``, ``report.md`` and PNG plots (matplotlib, Agg backend)."""
import json
import os
import os.path as osp
import tempfile
from typing import Dict, List

import torch

from gpusq_mm.checkpoint_format import student_state_dict
from gpusq_mm.quantization import upgrade_range_keys
from gpusq_mm.sparsity import count_violations
from gpusq_mm.sparsity.packed import quantize_weight, save_packed
from gpusq_mm.utils import load_checkpoint_file

PHASES = ('dense', 'control', '2:4', '2:4+INT8')


def _student_state(ckpt: dict) -> Dict[str, torch.Tensor]:
    """The student's weights of a distiller checkpoint, or the plain
    checkpoint's."""
    return student_state_dict(ckpt['state_dict']) or ckpt['state_dict']


def checkpoint_stats(path: str) -> dict:
    """Per-layer 2:4 state and weight bytes of a GPUSQ checkpoint.

    Sizes: ``fp32_bytes`` counts every float weight of the student at 4
    bytes; ``compressed_bytes`` stores the 2:4 INT8 layers in the packed
    format (measured on the written file), other INT8 layers at 1 byte per
    weight plus a float32 scale per output channel, and the rest (norms,
    biases, embeddings, layers kept dense) at 4 bytes.
    """
    ckpt = load_checkpoint_file(path)
    gpusq = ckpt['meta']['gpusq']
    sd = upgrade_range_keys(_student_state(ckpt))
    sparse = list(gpusq['sparsity']['layers'])
    # quantized GEMM weights: a layer's weight, an MHA's in_proj_weight
    quant = {w for m in gpusq.get('quant', {}).get('layers', [])
             for w in (f'{m}.weight', f'{m}.in_proj_weight')}
    layers, packed = [], {}
    for name in sparse:
        w = sd[name].float()
        layers.append(dict(name=name, shape=list(w.shape),
                           zeros=round(float((w == 0).float().mean()), 4),
                           violations=count_violations(w)))
        if name in quant:
            # <layer>.weight_quantizer.amax, in_proj_weight_quantizer.amax
            amax = sd.get(name + '_quantizer.amax')
            packed[name] = quantize_weight(w, amax)
    with tempfile.TemporaryDirectory() as tmp:
        packed_bytes = save_packed(osp.join(tmp, 'w.gsq24'), packed) \
            if packed else 0
    fp32 = rest = 0
    for name, v in sd.items():
        if not v.is_floating_point() or name.endswith('.amax'):
            continue
        fp32 += v.numel() * 4
        if name in packed:
            continue
        rest += v.numel() + 4 * v.shape[0] if name in quant \
            else v.numel() * 4
    packed_fp32 = sum(sd[n].numel() * 4 for n in packed)
    return dict(phase=gpusq['phase'], sparse_layers=len(sparse),
                quantized_layers=len((gpusq.get('quant') or {}).get(
                    'layers') or []),
                layers=layers,
                violations_24=sum(x['violations'] for x in layers),
                fp32_bytes=fp32, compressed_bytes=rest + packed_bytes,
                sparse_fp32_bytes=packed_fp32,
                sparse_packed_bytes=packed_bytes,
                sparse_ratio=round(packed_fp32 / packed_bytes, 3)
                if packed_bytes else None,
                model_ratio=round(fp32 / (rest + packed_bytes), 3))


def write_json(path: str, report: dict) -> None:
    with open(path, 'w') as f:
        json.dump(report, f, indent=2)


def results_table(report: dict) -> List[str]:
    """Markdown rows: one per task and metric. ``control`` is the dense
    model fine-tuned for exactly GPUSQ's schedule (equal budget); the bound
    applies to GPUSQ (2:4+INT8) - control."""
    rows = ['| task | model | metric | dense (start) | control (dense + '
            'same schedule) | 2:4 | 2:4+INT8 | GPUSQ - control | within '
            'bound |', '|---|---|---|---|---|---|---|---|---|']
    for t in report['tasks'].values():
        for metric in t['metrics']['dense']:
            vals = [t['metrics'][p][metric] for p in PHASES]
            delta = vals[3] - vals[1]
            ok = '' if metric != t['headline'] else (
                f'yes (>= -{t["tolerance"]})' if delta >= -t['tolerance']
                else f'NO (< -{t["tolerance"]})')
            rows.append(f'| {t["name"]} | {t["title"]} | {metric} | '
                        + ' | '.join(f'{v:.2f}' for v in vals)
                        + f' | {delta:+.2f} | {ok} |')
    return rows


def size_table(report: dict) -> List[str]:
    rows = ['| task | 2:4 layers | INT8 layers | 2:4 violations | FP32 '
            'weights | compressed | ratio | 2:4 layers FP32 -> packed |',
            '|---|---|---|---|---|---|---|---|']
    for t in report['tasks'].values():
        s = t['stats']
        rows.append(
            f'| {t["name"]} | {s["sparse_layers"]} | '
            f'{s["quantized_layers"]} | {s["violations_24"]} | '
            f'{s["fp32_bytes"] / 1e6:.3f} MB | '
            f'{s["compressed_bytes"] / 1e6:.3f} MB | '
            f'{s["model_ratio"]:.2f}x | {s["sparse_ratio"]:.2f}x |')
    return rows


def _ms(row: dict, key: str) -> str:
    return f'{row[key]:.3f}' if key in row else '-'


def _speedup(row: dict, key: str) -> str:
    return f'{row[key]:.2f}x' if key in row else '-'


def latency_lines(report: dict) -> List[str]:
    """Markdown table of CPU latency, dense FP32 graph vs GPUSQ INT8 graph
    on ONNX Runtime and on OpenVINO, one row per task and batch (or why a
    task has none)."""
    rows = ['| task | input | batch | ORT dense FP32 ms | ORT GPUSQ INT8 ms '
            '| ORT INT8 speed-up | OpenVINO dense FP32 ms | OpenVINO GPUSQ '
            'INT8 ms | OpenVINO INT8 speed-up |',
            '|---|---|---|---|---|---|---|---|---|']
    notes = []
    for t in report['tasks'].values():
        d = t.get('deploy', {})
        if d.get('status') != 'ok':
            notes.append(f'- {t["name"]}: deploy step not run: '
                         f'{d.get("reason", "unknown")}')
            continue
        shape = 'x'.join(str(v) for v in d['input_shape'])
        for r in d['latency']:
            rows.append(f'| {t["name"]} | {shape} | {r["batch"]} | '
                        f'{r["fp32_ms"]:.3f} | {r["int8_ms"]:.3f} | '
                        f'{r["speedup"]:.2f}x | {_ms(r, "ov_fp32_ms")} | '
                        f'{_ms(r, "ov_int8_ms")} | '
                        f'{_speedup(r, "ov_speedup")} |')
        skipped = (d.get('openvino') or {}).get('skipped')
        if skipped:
            notes.append(f'- {t["name"]}: OpenVINO not run: {skipped}')
    return (rows if len(rows) > 2 else []) + notes


def write_markdown(path: str, report: dict) -> None:
    lines = ['# GPUSQ demo report', '',
             f'Machine: {report["machine"]}; wall time '
             f'{report["wall_s"] / 60:.1f} min; command: '
             f'`{report["command"]}`', '', '## Accuracy', '',
             *results_table(report), '', '## Weight sizes', '',
             *size_table(report), '',
             '## CPU latency (ONNX Runtime, OpenVINO)', '',
             *latency_lines(report), '', '## Step times', '']
    for t in report['tasks'].values():
        lines.append(f'- {t["name"]}: ' + ', '.join(
            f'{k} {v:.0f} s' for k, v in t['seconds'].items()))
    lines += ['', 'Plots: ' + ', '.join(
        f'`{p}`' for p in report.get('plots', []))]
    with open(path, 'w') as f:
        f.write('\n'.join(lines) + '\n')


def write_plots(out_dir: str, report: dict) -> List[str]:
    """accuracy.png, sparsity.png, sizes.png (and latency.png when the
    deploy step ran); returns the file names."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    tasks = list(report['tasks'].values())
    names = []

    def save(fig, name):
        fig.tight_layout()
        fig.savefig(osp.join(out_dir, name), dpi=100)
        plt.close(fig)
        names.append(name)

    fig, axes = plt.subplots(1, len(tasks), figsize=(4 * len(tasks), 3.2),
                             squeeze=False)
    for ax, t in zip(axes[0], tasks):
        vals = [t['metrics'][p][t['headline']] for p in PHASES]
        ax.bar(PHASES, vals, color=['#888', '#bbb', '#4a7', '#47a'])
        ax.set_ylim(max(0, min(vals) - 10), max(vals) + 3)
        ax.set_title(f'{t["name"]}: {t["headline"]}')
        for i, v in enumerate(vals):
            ax.text(i, v, f'{v:.1f}', ha='center', va='bottom')
    save(fig, 'accuracy.png')

    fig, ax = plt.subplots(figsize=(8, 3.2))
    for t in tasks:
        zeros = [x['zeros'] for x in t['stats']['layers']]
        ax.plot(range(len(zeros)), zeros, 'o-', label=t['name'], ms=3)
    ax.axhline(0.5, color='k', lw=0.5, ls='--')
    ax.set_ylim(0, 1)
    ax.set_xlabel('2:4 layer (model order)')
    ax.set_ylabel('fraction of zero weights')
    ax.legend()
    save(fig, 'sparsity.png')

    fig, ax = plt.subplots(figsize=(5, 3.2))
    x = range(len(tasks))
    ax.bar([i - 0.2 for i in x], [t['stats']['fp32_bytes'] / 1e6
                                  for t in tasks], 0.4, label='FP32')
    ax.bar([i + 0.2 for i in x], [t['stats']['compressed_bytes'] / 1e6
                                  for t in tasks], 0.4,
           label='2:4 INT8 packed')
    ax.set_xticks(list(x), [t['name'] for t in tasks])
    ax.set_ylabel('weights (MB)')
    ax.legend()
    save(fig, 'sizes.png')

    lat = [(t['name'], r) for t in tasks
           if t.get('deploy', {}).get('status') == 'ok'
           for r in t['deploy']['latency']]
    if lat:
        save(_latency_figure(plt, lat), 'latency.png')
    return names


def _latency_figure(plt, lat: list):
    """Grouped bars: dense FP32 and GPUSQ INT8 on ONNX Runtime and (where
    timed) OpenVINO, per task and batch."""
    bars = [('fp32_ms', 'ORT dense FP32', '#bbb'),
            ('int8_ms', 'ORT GPUSQ INT8', '#47a'),
            ('ov_fp32_ms', 'OpenVINO dense FP32', '#888'),
            ('ov_int8_ms', 'OpenVINO GPUSQ INT8', '#4a7')]
    bars = [b for b in bars if any(b[0] in r for _, r in lat)]
    fig, ax = plt.subplots(figsize=(7, 3.4))
    width = 0.8 / len(bars)
    for j, (key, label, color) in enumerate(bars):
        ax.bar([i + (j - (len(bars) - 1) / 2) * width
                for i in range(len(lat))],
               [r.get(key, 0) for _, r in lat], width, label=label,
               color=color)
    ax.set_xticks(list(range(len(lat))),
                  [f'{n} b{r["batch"]}' for n, r in lat])
    ax.set_yscale('log')
    ax.set_ylabel('CPU median ms')
    ax.legend(fontsize=7)
    return fig


def ensure_dir(path: str) -> str:
    os.makedirs(path, exist_ok=True)
    return path

"""``report.json`` and ``report.md``: what the deploy step produced."""
import json
import os.path as osp
from typing import Dict, List

from torch import nn

from .layers import ExportConv2d, ExportLinear
from .qdq import DeployInfo


def layer_table(deploy_model: nn.Module, info: DeployInfo,
                sparse_facts: Dict[str, dict]) -> List[dict]:
    """One row per deployed GEMM/conv layer (those in ``sparse_facts``,
    see :func:`gpusq_mm.deploy.verify.weight_facts`): shape, sparsity,
    precision."""
    rows = []
    for name, module in deploy_model.named_modules():
        if not isinstance(module, (ExportLinear, ExportConv2d)):
            continue
        layer = name.split('.', 1)[1] if name.startswith('model.') else name
        if layer not in sparse_facts:
            continue  # not in the deployed graph (e.g. auxiliary heads)
        facts = sparse_facts[layer]
        scale = getattr(module, 'input_qdq', None)
        rows.append(dict(
            layer=layer,
            kind='Linear' if isinstance(module, ExportLinear) else 'Conv2d',
            onnx_weight=facts.get('initializer', ''),
            shape=facts.get('shape', []),
            sparse_24=layer in info.sparse,
            zeros=facts.get('zeros'),
            weight_bits=info.quantized.get(layer),
            input_scale=None if scale is None else float(scale.scale)))
    return rows


def sizes(rows: List[dict], onnx_path: str) -> dict:
    """File size and the storage of the exported GEMM weights."""
    elems = {r['layer']: _numel(r['shape']) for r in rows}
    fp32 = 4 * sum(elems.values())
    stored, packed = 0, 0.0
    for r in rows:
        n = elems[r['layer']]
        bits = 8 if r['weight_bits'] else 32
        stored += n * bits // 8
        # 2:4 keeps half the values plus 2 bits of index per kept value
        packed += n * ((bits + 2) / 2 if r['sparse_24'] else bits) / 8
    return dict(onnx_bytes=osp.getsize(onnx_path), gemm_weights_fp32=fp32,
                gemm_weights_stored=stored,
                gemm_weights_sparse_packed=int(packed),
                compression_vs_fp32=round(fp32 / packed, 2) if packed else 0)


def _numel(shape: List[int]) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n if shape else 0


def write_report(work_dir: str, report: dict) -> None:
    """Write ``report.json`` and a short ``report.md``."""
    with open(osp.join(work_dir, 'report.json'), 'w') as f:
        json.dump(report, f, indent=2, default=str)
    with open(osp.join(work_dir, 'report.md'), 'w') as f:
        f.write(markdown(report))


def _summary(parity: dict) -> dict:
    return {k: v for k, v in parity.items() if k not in ('passed', 'graphs')}


def _parity_lines(parity: dict) -> List[str]:
    """Per-graph, per-image parity verdicts."""
    lines = []
    for graph, result in (parity.get('graphs') or {}).items():
        lines.append(f"  - `{graph}`: {result['passed_images']} of "
                     f"{result['num_images']} images passed "
                     f"({result['needed']} needed): "
                     f"{'PASSED' if result['passed'] else 'FAILED'}")
        for verdict in result['images']:
            facts = {k: v for k, v in verdict.items()
                     if k not in ('image', 'passed')}
            lines.append(f"    - {'pass' if verdict['passed'] else 'FAIL'} "
                         f"`{osp.basename(verdict['image'])}` "
                         f'{json.dumps(facts, default=str)}')
    return lines


def _openvino_lines(facts) -> List[str]:
    """The OpenVINO IR, its weight bytes and its int8 layers."""
    if not facts:
        return []
    run = facts['execution']
    return [f"- OpenVINO IR: `{facts['xml']}` ({facts['bin_bytes']} bytes "
            f".bin, {facts['int8_weight_bytes']} of them int8 weights; "
            f"compress_to_fp16={facts['compress_to_fp16']}; OpenVINO "
            f"{facts['openvino']})",
            f"- OpenVINO runs {run['int8_gemm_layers']} of "
            f"{run['gemm_layers']} GEMM/conv layers in int8 "
            f"(inference precision {facts['inference_precision']}); "
            f"float: {run['float_gemm_layers'][:8]}"]


def markdown(report: dict) -> str:
    """Render the report as Markdown."""
    rows = report.get('layers', [])
    parity = report.get('parity', {})
    lines = [
        '# GPUSQ deploy report', '',
        f"- checkpoint: `{report.get('checkpoint')}` "
        f"(phase {report.get('gpusq', {}).get('phase', 'dense')})",
        f"- ONNX: `{report.get('onnx')}` (opset {report.get('opset')}, "
        f"{report.get('precision')})",
        f"- layers: {len(rows)} exported GEMM/conv, "
        f"{sum(r['sparse_24'] for r in rows)} 2:4 (verified in the "
        f"initializers), {sum(bool(r['weight_bits']) for r in rows)} "
        'with Q/DQ',
        f"- sizes: {json.dumps(report.get('sizes', {}))}",
        *_openvino_lines(report.get('openvino')),
        f"- parity vs PyTorch (every graph below): "
        f"{'PASSED' if parity.get('passed') else 'FAILED'} "
        f"{json.dumps(_summary(parity))}",
        *_parity_lines(parity),
        f"- engine: {json.dumps(report.get('engine', {}))}",
        f"- build script: `{report.get('build_script')}`", '',
        '| layer | kind | shape (ONNX) | 2:4 | zeros | W bits | input scale |',
        '|---|---|---|---|---|---|---|',
    ]
    for r in rows:
        zeros = '' if r['zeros'] is None else f"{r['zeros']:.2f}"
        scale = '' if r['input_scale'] is None else f"{r['input_scale']:.3g}"
        lines.append(f"| {r['layer']} | {r['kind']} | {r['shape']} | "
                     f"{'yes' if r['sparse_24'] else 'no'} | {zeros} | "
                     f"{r['weight_bits'] or 'fp'} | {scale} |")
    return '\n'.join(lines) + '\n'

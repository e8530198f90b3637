"""Every pruned GEMM of the export is also INT8, counted in the ONNX graph
itself (nn.MultiheadAttention projections included), and the counter
catches a pruned float weight."""
import copy

import numpy as np
import onnx
import torch
from torch import nn

from gpusq_mm.deploy.exporter import export_onnx, run_ort
from gpusq_mm.deploy.qdq import build_deploy_model
from gpusq_mm.deploy.verify import gemm_weights, pruned_float_weights
from gpusq_mm.oneshot import quick_gpusq
from gpusq_mm.quantization import (calibrate, insert_quantizers,
                                   select_quant_layers)
from gpusq_mm.sparsity import find_layers, magnitude_mask

from .test_codebases.test_mmdet_export import (build, check_parity,  # noqa
                                               coco, export, make_exporter)


class Block(nn.Module):
    """Self-attention (nn.MultiheadAttention) and an MLP."""

    def __init__(self) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(32, 4, batch_first=True)
        self.fc = nn.Linear(32, 32)

    def forward(self, x, mode: str = 'tensor'):
        return (self.fc(self.attn(x, x, x)[0] + x), )


def _export(model: nn.Module, sparse, tmp_path, name: str):
    deploy, info = build_deploy_model(model, sparse)
    x = torch.randn(2, 6, 32)
    path = str(tmp_path / f'{name}.onnx')
    export_onnx(deploy, x, path, ['out'])
    return onnx.load(path), info, path, x


def test_mha_block_all_pruned_gemms_int8(tmp_path):
    torch.manual_seed(0)
    model = Block().eval()
    calib = [torch.randn(2, 6, 32) for _ in range(2)]
    sparse, _ = quick_gpusq(model, calib, exclude=())
    assert sparse == ['attn.in_proj_weight', 'attn.out_proj.weight',
                      'fc.weight']
    graph, info, path, x = _export(model, sparse, tmp_path, 'q')
    weights = gemm_weights(graph)
    # q, k, v, out_proj and fc: five int8 2:4 GEMM weights in the graph
    assert sum(w['pruned'] and w['int8'] for w in weights) == 5
    assert pruned_float_weights(graph) == []
    assert set(info.quantized) == {'attn.q_proj', 'attn.k_proj',
                                   'attn.v_proj', 'attn.out_proj', 'fc'}
    with torch.no_grad():
        ref = model(x)[0].numpy()
    np.testing.assert_allclose(run_ort(path, x)[0], ref, rtol=1e-4,
                               atol=1e-4)


def test_counter_catches_pruned_float_weights(tmp_path):
    """Deliberately broken: pruned but never quantized (what the export
    did for nn.MultiheadAttention before) must be counted."""
    torch.manual_seed(0)
    model = Block().eval()
    with torch.no_grad():
        for p in (model.attn.in_proj_weight, model.fc.weight):
            p.mul_(magnitude_mask(p))
    graph, *_ = _export(model, ['attn.in_proj_weight', 'fc.weight'],
                        tmp_path, 'float')
    assert len(pruned_float_weights(graph)) == 4  # q, k, v and fc


def test_dino_every_pruned_gemm_int8(coco, tmp_path):  # noqa: F811
    """DETR family (tiny DINO; its decoder self-attention is
    nn.MultiheadAttention): every pruned GEMM weight is int8 in the graph,
    and ONNX Runtime agrees with the fake-quantized model on the top 10
    detections of two images.

    2:4 + INT8 cover the decoder (self-attention projections, deformable
    cross-attention, FFNs): a random-init DINO with *every* layer int8 is
    chaotic under float-level differences (an activation rounding flip
    moves a sampling location, then the top-k), so its ORT-vs-PyTorch top-10
    match was 3 to 7 of 10 with or without the attention projections in
    int8, against 10 of 10 for the same model in float, for any one of
    backbone, neck, decoder or head in int8, and with 9 of 10 for the
    encoder."""
    exporter = make_exporter('dino_swin_tiny_dense.py', 'ObjectDetection',
                             keep_top_k=20)
    model = build(exporter)
    inputs, meta = exporter.load_image(f'{coco}/val/000000.jpg')
    params = dict(model.named_parameters())
    masks = {d.name: magnitude_mask(params[d.name])
             for d in find_layers(model, include=[r'^decoder\.'])
             if d.eligible}
    with torch.no_grad():
        for name, mask in masks.items():
            params[name].mul_(mask)
    sparse = sorted(masks)
    assert sum(p.endswith('in_proj_weight') for p in sparse) == 2
    insert_quantizers(model, select_quant_layers(model,
                                                 include=[r'^decoder\.']))
    calibrate(model, lambda m: m.predict(
        inputs, copy.deepcopy(meta['data_samples'])))
    deploy, info = build_deploy_model(model, sparse, masks)
    assert {'decoder.layers.0.self_attn.attn.q_proj',
            'decoder.layers.1.self_attn.attn.out_proj'} <= set(info.quantized)
    path = str(tmp_path / 'dino.onnx')
    session = export(exporter, deploy, f'{coco}/val/000000.jpg', path)
    graph = onnx.load(path)
    int8_pruned = {w['weight'] for w in gemm_weights(graph)
                   if w['pruned'] and w['int8']}
    for layer in (0, 1):
        for proj in ('q_proj', 'k_proj', 'v_proj', 'out_proj'):
            name = f'decoder.layers.{layer}.self_attn.attn.{proj}.'
            assert any(name in w for w in int8_pruned), name
    assert pruned_float_weights(graph) == []
    for i in range(2):
        check_parity(exporter, model, session, f'{coco}/val/{i:06d}.jpg',
                     min_dets=5)

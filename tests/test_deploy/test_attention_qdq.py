"""Attention-matmul quantizers (QATHook quant_attention=True) exported as
Q/DQ pairs on q, k, the softmax output and v; ONNX Runtime matches the
fake-quantized PyTorch model."""
import numpy as np
import onnx
import pytest
import torch
from torch import nn

from gpusq_mm.deploy.exporter import export_onnx, run_ort
from gpusq_mm.deploy.qdq import build_deploy_model
from gpusq_mm.quantization import (calibrate, insert_attention_quantizers,
                                   insert_quantizers, select_attention,
                                   select_quant_layers)
from gpusq_mm.sparsity import magnitude_mask


class Block(nn.Module):
    """Tokens through one attention module and an MLP head."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        if kind == 'window':
            from mmdet.models.backbones.swin import WindowMSA
            self.attn = WindowMSA(32, 2, (4, 4))
        elif kind == 'vit':
            from mmpretrain.models.utils.attention import MultiheadAttention
            self.attn = MultiheadAttention(32, 2)
        else:
            self.attn = nn.MultiheadAttention(32, 2, batch_first=True)
        self.fc = nn.Linear(32, 32)

    def forward(self, x):
        if self.kind == 'mha':
            y = self.attn(x, x, x)[0]
        else:
            y = self.attn(x)
        return (self.fc(y + x), )


@pytest.mark.parametrize('kind', ['window', 'vit', 'mha'])
@pytest.mark.parametrize('sparse_attention', [False, True])
def test_attention_qdq_export(kind, sparse_attention, tmp_path):
    torch.manual_seed(0)
    model = Block(kind).eval()
    sparse = ['fc.weight']
    if sparse_attention:
        sparse.append('attn.in_proj_weight' if kind == 'mha'
                      else 'attn.qkv.weight')
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name in sparse:
            params[name].mul_(magnitude_mask(params[name]))
    insert_quantizers(model, select_quant_layers(model))
    insert_attention_quantizers(model, select_attention(model))
    x = torch.randn(2, 16, 32)
    calibrate(model, lambda m: m(x))
    with torch.no_grad():
        ref = model(x)[0].numpy()
    deploy, info = build_deploy_model(model, sparse)
    assert sum('matmul_quantizers' in n for n in info.tensor_quantizers) == 4
    path = str(tmp_path / 'attn.onnx')
    export_onnx(deploy, x, path, ['out'])
    graph = onnx.load(path).graph
    ops = [n.op_type for n in graph.node]
    # every MatMul of the attention gets Q/DQ'd operands
    producers = {o: n for n in graph.node for o in n.output}
    matmuls = [n for n in graph.node if n.op_type == 'MatMul'
               and all(i in producers for i in n.input)]
    quantized_products = [
        n for n in matmuls
        if all(producers[i].op_type in ('DequantizeLinear', 'Transpose')
               for i in n.input)]
    assert len(quantized_products) >= 2, ops
    out = run_ort(path, x)[0]
    cos = float((out * ref).sum() / np.linalg.norm(out) / np.linalg.norm(ref))
    assert cos > 0.9999, cos
    assert np.abs(out - ref).max() < 1e-3

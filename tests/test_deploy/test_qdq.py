"""Q/DQ folding, the exported graph and its checks on small real layers."""
import collections

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper
from torch import nn

from gpusq_mm.deploy.exporter import export_onnx, ort_session, run_ort
from gpusq_mm.deploy.qdq import build_deploy_model
from gpusq_mm.deploy.verify import DeployVerifyError, verify_qdq, verify_sparse
from gpusq_mm.quantization import (calibrate, insert_quantizers,
                                   select_quant_layers)
from gpusq_mm.sparsity import magnitude_mask


class Net(nn.Module):
    """Conv stem, a 3-D token MLP and a 2-D head."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(16, 32, 3, padding=1)
        self.fc1 = nn.Linear(32, 64)
        self.fc2 = nn.Linear(64, 32)
        self.head = nn.Linear(32, 8)

    def forward(self, x):
        x = self.conv(x).flatten(2).transpose(1, 2)  # (N, HW, 32)
        x = self.fc2(torch.relu(self.fc1(x))) + x
        return (self.head(x.mean(1)), )


def _gpusq(model: nn.Module, weight_bits: int = 8):
    torch.manual_seed(0)
    sparse = ['conv.weight', 'fc1.weight', 'fc2.weight']
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name in sparse:
            params[name].mul_(magnitude_mask(params[name]))
    insert_quantizers(model, select_quant_layers(model), weight_bits)
    calibrate(model, lambda m: [m(torch.randn(2, 16, 8, 8)) for _ in '12'])
    return sparse


@pytest.fixture
def exported(tmp_path):
    torch.manual_seed(0)
    model = Net().eval()
    sparse = _gpusq(model)
    deploy, info = build_deploy_model(model, sparse)
    x = torch.randn(1, 16, 8, 8)
    path = str(tmp_path / 'net.onnx')
    export_onnx(deploy, x, path, ['out'])
    return model, deploy, info, x, path


def test_int8_weights_and_qdq_pairs(exported):
    model, _, info, _, path = exported
    graph = onnx.load(path)
    assert sorted(info.quantized) == ['conv', 'fc1', 'fc2', 'head']
    assert info.sparse == ['conv', 'fc1', 'fc2']
    facts = verify_sparse(graph, info.sparse)
    assert facts['fc1']['dtype'] == 'int8'
    assert facts['fc1']['shape'] == [32, 64]  # (in, out): no Transpose
    assert facts['conv']['shape'] == [32, 16, 3, 3]
    assert all(f['zeros'] >= 0.5 for f in facts.values())
    assert sorted(verify_qdq(graph, sorted(info.quantized))) == \
        sorted(info.quantized)
    ops = collections.Counter(n.op_type for n in graph.graph.node)
    assert ops['QuantizeLinear'] == 4 and ops['DequantizeLinear'] == 8
    assert 'Transpose' not in {
        n.op_type for n in graph.graph.node
        if any(i.endswith('deploy_weight_int8') for i in n.input)}
    # the per-channel scales are the layer's weight_amax / 127
    inits = {i.name: numpy_helper.to_array(i)
             for i in graph.graph.initializer}
    scale = inits['fc1.weight_scale']
    np.testing.assert_allclose(
        scale, model.fc1.weight_quantizer.amax.flatten().numpy() / 127,
        rtol=1e-6)


def test_ort_matches_fake_quant_model(exported):
    model, deploy, _, x, path = exported
    with torch.no_grad():
        ref = model(x)[0].numpy()
        mid = deploy(x)[0].numpy()
    np.testing.assert_allclose(mid, ref, rtol=1e-5, atol=1e-7)
    got = run_ort(path, x)[0]
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-5)


def test_ort_fuses_linear_into_integer_kernel(exported, tmp_path):
    """Q/DQ adjacent to a MatMul with a 2-D int8 weight: ONNX Runtime runs
    the token MLP as integer GEMMs (the property the speed relies on)."""
    _, _, _, _, path = exported
    opt = str(tmp_path / 'opt.onnx')
    ort_session(path, threads=1, optimized_path=opt)
    ops = collections.Counter(n.op_type for n in onnx.load(opt).graph.node)
    assert ops['MatMulIntegerToFloat'] == 2, ops


def test_tampered_weight_fails_verify(exported, tmp_path):
    _, _, info, _, path = exported
    graph = onnx.load(path)
    init = next(i for i in graph.graph.initializer
                if i.name == 'fc2.deploy_weight_int8')
    weight = numpy_helper.to_array(init).copy()
    weight[:4, 0] = 5  # a dense group of 4 along the input channels
    init.CopyFrom(numpy_helper.from_array(weight, init.name))
    with pytest.raises(DeployVerifyError, match=r'fc2 .*1 groups of 4'):
        verify_sparse(graph, info.sparse)
    del graph.graph.initializer[:]
    with pytest.raises(DeployVerifyError, match='missing'):
        verify_sparse(graph, info.sparse)


def test_layer_called_sparse_but_dense_is_refused():
    model = Net().eval()
    with pytest.raises(ValueError, match=r"'fc1.weight' .* not sparse"):
        build_deploy_model(model, ['fc1.weight'])


def test_masks_are_baked():
    model = Net().eval()
    mask = magnitude_mask(model.fc1.weight)
    deploy, info = build_deploy_model(model, [], {'fc1.weight': mask})
    assert info.baked == {'fc1': int((~mask).sum())}
    assert model.fc1.weight.count_nonzero() == model.fc1.weight.numel()


def test_w4a8_weights_on_4bit_grid(tmp_path):
    model = Net().eval()
    sparse = _gpusq(model, weight_bits=4)
    deploy, info = build_deploy_model(model, sparse)
    assert info.quantized['fc1'] == 4
    w = deploy.fc1.deploy_weight_int8
    assert w.dtype == torch.int8 and int(w.abs().max()) <= 7
    x = torch.randn(1, 16, 8, 8)
    path = str(tmp_path / 'w4.onnx')
    export_onnx(deploy, x, path, ['out'])
    with torch.no_grad():
        ref = model(x)[0].numpy()
    np.testing.assert_allclose(run_ort(path, x)[0], ref, rtol=1e-4,
                               atol=1e-5)


class Attn(nn.Module):

    def __init__(self) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(32, 4)
        self.norm = nn.LayerNorm(32)

    def forward(self, x):
        return (self.attn(x, self.norm(x), x)[0], )


def test_multihead_attention_split_keeps_24(tmp_path):
    torch.manual_seed(0)
    model = Attn().eval()
    with torch.no_grad():
        for p in (model.attn.in_proj_weight, model.attn.out_proj.weight):
            p.mul_(magnitude_mask(p))
    deploy, info = build_deploy_model(
        model, ['attn.in_proj_weight', 'attn.out_proj.weight'])
    assert info.sparse == ['attn.k_proj', 'attn.out_proj', 'attn.q_proj',
                           'attn.v_proj']
    x = torch.randn(5, 2, 32)  # (L, N, E): batch_first=False
    path = str(tmp_path / 'mha.onnx')
    export_onnx(deploy, x, path, ['out'])
    verify_sparse(onnx.load(path), info.sparse)
    with torch.no_grad():
        ref = model(x)[0].numpy()
    np.testing.assert_allclose(run_ort(path, x)[0], ref, rtol=1e-4,
                               atol=1e-5)


def _tensor_quantizer(amax: float) -> nn.Module:
    """A calibrated stand-alone quantizer (as attention-matmul operands
    have)."""
    from gpusq_mm.quantization import TensorQuantizer
    quantizer = TensorQuantizer()
    quantizer.load_calib_amax(torch.tensor(amax))
    assert quantizer.enable_quant()
    return quantizer


def test_tensor_quantizers_become_qdq(tmp_path):

    class M(nn.Module):

        def __init__(self) -> None:
            super().__init__()
            self.qk_quantizer = _tensor_quantizer(2.0)

        def forward(self, q, ):
            return (torch.matmul(self.qk_quantizer(q), q.transpose(-1, -2)),
                    )

    model = M().eval()
    deploy, info = build_deploy_model(model, [])
    assert info.tensor_quantizers == ['qk_quantizer']
    x = torch.randn(1, 4, 8) * 2
    path = str(tmp_path / 't.onnx')
    export_onnx(deploy, x, path, ['out'])
    ops = [n.op_type for n in onnx.load(path).graph.node]
    assert ops.count('QuantizeLinear') == 1
    with torch.no_grad():
        ref = model(x)[0].numpy()
    np.testing.assert_allclose(run_ort(path, x)[0], ref, rtol=1e-5,
                               atol=1e-5)

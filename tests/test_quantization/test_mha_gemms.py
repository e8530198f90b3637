"""INT8 GEMMs of nn.MultiheadAttention: the q/k/v input projections and
out_proj are fake-quantized with the policy of every other GEMM (input per
tensor, weight per output channel, calibrated, resumable)."""
import pytest
import torch
from torch import nn

from gpusq_mm.quantization import (calibrate, disable_quant, enable_quant,
                                   fake_quantize, insert_attention_quantizers,
                                   insert_quantizers, make_scales_learnable,
                                   per_channel_amax, quant_gemms,
                                   select_attention, select_quant_layers)


class Cross(nn.Module):
    """Cross-attention as in a DETR decoder: query, key and value are
    different tensors (so their input ranges differ)."""

    def __init__(self, batch_first: bool = True) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(16, 2, batch_first=batch_first)
        self.batch_first = batch_first

    def forward(self, q, k, v):
        if not self.batch_first:
            q, k, v = (t.transpose(0, 1) for t in (q, k, v))
        out = self.attn(q, k, v)[0]
        return out if self.batch_first else out.transpose(0, 1)


def _inputs(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(2, 5, 16, generator=g),
            3 * torch.randn(2, 7, 16, generator=g),
            0.5 * torch.randn(2, 7, 16, generator=g))


def _quantized(batch_first: bool = True, attention: bool = False):
    torch.manual_seed(0)
    model = Cross(batch_first).eval()
    decisions = select_quant_layers(model)
    insert_quantizers(model, decisions)
    if attention:
        insert_attention_quantizers(model, select_attention(model))
    x = _inputs()
    calibrate(model, lambda m: m(*x))
    return model, decisions, x


@pytest.mark.parametrize('batch_first', [True, False])
def test_projections_quantized_and_calibrated(batch_first):
    model, decisions, x = _quantized(batch_first)
    assert decisions == {'attn': '', 'attn.out_proj': ''}
    attn = model.attn
    amax = {op: float(attn.in_proj_quantizers[op].amax) for op in 'qkv'}
    # each projection's input range is its own tensor's max |x|
    for op, t in zip('qkv', x):
        assert amax[op] == pytest.approx(float(t.abs().max()))
    assert float(attn.out_proj.input_quantizer.amax) > 0
    assert torch.equal(attn.in_proj_weight_quantizer.amax,
                       per_channel_amax(attn.in_proj_weight))
    assert set(quant_gemms(model)) == {'attn', 'attn.out_proj'}
    with torch.no_grad():
        got = model(*x)
        expected = _by_hand(attn, *x)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    disable_quant(model)
    with torch.no_grad():
        assert float((got - model(*x)).abs().max()) > 1e-4  # quantized


def _by_hand(attn: nn.MultiheadAttention, q, k, v) -> torch.Tensor:
    """Batch-first attention with every GEMM operand fake-quantized."""
    F = nn.functional
    ranges = attn.in_proj_weight_quantizer.amax.chunk(3)
    proj = [F.linear(fake_quantize(t, attn.in_proj_quantizers[op].amax),
                     fake_quantize(w, r), b)
            for t, op, w, r, b in zip((q, k, v), 'qkv',
                                      attn.in_proj_weight.chunk(3), ranges,
                                      attn.in_proj_bias.chunk(3))]
    qh, kh, vh = (t.reshape(t.shape[0], t.shape[1], 2, 8).transpose(1, 2)
                  for t in proj)
    probs = ((qh * 8**-0.5) @ kh.transpose(-2, -1)).softmax(-1)
    out = (probs @ vh).transpose(1, 2).reshape(q.shape[0], q.shape[1], 16)
    o = attn.out_proj
    return F.linear(fake_quantize(out, o.input_quantizer.amax),
                    fake_quantize(o.weight, o.weight_quantizer.amax), o.bias)


def test_off_equals_stock_forward():
    model, _, x = _quantized()
    with torch.no_grad():
        on = model(*x)
        disable_quant(model)
        off = model(*x)
        stock = nn.MultiheadAttention(16, 2, batch_first=True).eval()
        stock.load_state_dict({k: v for k, v in
                               model.attn.state_dict().items()
                               if not k.endswith('amax')})
        torch.testing.assert_close(off, stock(*x)[0])
    assert not torch.allclose(on, off)


def test_excluded_attention_keeps_out_proj_float():
    torch.manual_seed(0)
    model = Cross()
    decisions = select_quant_layers(model, exclude=[r'^attn$'])
    assert 'exclude' in decisions['attn']
    assert 'bypassed' in decisions['attn.out_proj']
    assert insert_quantizers(model, decisions) == {}


def test_with_attention_matmul_quantizers_and_resume():
    model, _, x = _quantized(attention=True)
    attn = model.attn
    assert set(attn.matmul_quantizers) == {'q', 'k', 'p', 'v'}
    assert all(float(q.amax) > 0 for q in attn.matmul_quantizers.values())
    with torch.no_grad():
        out = model(*x)
    # resume: a fresh model gets the structure from the names, then the
    # state dict (ranges included) loads strictly and the outputs match
    fresh = Cross().eval()
    insert_quantizers(fresh, {n: '' for n in quant_gemms(model)})
    insert_attention_quantizers(fresh, {'attn': ''})
    fresh.load_state_dict(model.state_dict(), strict=True)
    enable_quant(fresh)
    with torch.no_grad():
        assert torch.equal(fresh(*x), out)


def test_learnable_ranges_include_in_proj_weight():
    model, _, x = _quantized()
    params = make_scales_learnable(model)
    assert any(p is model.attn.in_proj_weight_quantizer.amax for p in params)
    model.train()
    model(*x).pow(2).sum().backward()
    assert model.attn.in_proj_weight_quantizer.amax.grad.abs().sum() > 0
    assert model.attn.in_proj_quantizers['k'].amax.grad is not None


def test_unsupported_variants_stay_float():
    model = nn.Module()
    model.kv = nn.MultiheadAttention(16, 2, kdim=8, vdim=8)
    model.bias = nn.MultiheadAttention(16, 2, add_bias_kv=True)
    decisions = select_quant_layers(model)
    assert 'kdim/vdim' in decisions['kv']
    assert 'add_bias_kv' in decisions['bias']
    assert 'bypassed' in decisions['kv.out_proj']


def test_format_1_in_proj_range_key_loads():
    """Format 1 saved the input-projection weight ranges as
    ``in_proj_weight_amax``; they load into the weight quantizer."""
    model, _, x = _quantized()
    old = {k.replace('in_proj_weight_quantizer.amax', 'in_proj_weight_amax')
           .replace('input_quantizer.amax', 'input_amax')
           .replace('weight_quantizer.amax', 'weight_amax'): v
           for k, v in model.state_dict().items()}
    assert 'attn.in_proj_weight_amax' in old
    torch.manual_seed(1)
    fresh = Cross().eval()
    insert_quantizers(fresh, select_quant_layers(fresh))
    fresh.load_state_dict(old)  # strict
    enable_quant(fresh)
    assert torch.equal(fresh.attn.in_proj_weight_quantizer.amax,
                       model.attn.in_proj_weight_quantizer.amax)
    with torch.no_grad():
        assert torch.equal(fresh(*x), model(*x))

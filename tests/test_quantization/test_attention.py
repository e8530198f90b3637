"""Attention-matmul quantization (q·kᵀ and attn·v) on the attention classes
of torch, mmcv, mmdet, mmseg and mmpretrain."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gpusq_mm.quantization import (SUPPORTED_ATTENTION, TensorQuantizer,
                                   calibrate, insert_attention_quantizers,
                                   quantize_attention, select_attention)


def _first(out):
    return out[0] if isinstance(out, tuple) else out


def _cases():
    from mmdet.models.backbones.swin import WindowMSA as DetWMSA
    from mmpretrain.models.utils.attention import \
        MultiheadAttention as PretrainMHA
    from mmpretrain.models.utils.attention import WindowMSA as PretrainWMSA
    from mmseg.models.backbones.swin import WindowMSA as SegWMSA
    window = torch.zeros(4, 16, 16)
    window[1:, :, 8:] = -100.0  # a shifted-window style mask
    padding = torch.tensor([[0, 0, 0, 1, 1], [0, 0, 0, 0, 0]]).bool()
    return {
        'mmdet_window': (DetWMSA(32, 2, (4, 4)),
                         (torch.randn(8, 16, 32), window), {}),
        'mmseg_window': (SegWMSA(32, 2, (4, 4)),
                         (torch.randn(4, 16, 32), ), {}),
        'mmpretrain_window': (PretrainWMSA(32, (4, 4), 2),
                              (torch.randn(4, 16, 32), ), {}),
        'mmpretrain_mha': (PretrainMHA(32, 2), (torch.randn(2, 10, 32), ),
                           {}),
        'torch_mha': (nn.MultiheadAttention(32, 2),
                      (torch.randn(5, 2, 32), ) * 3,
                      dict(key_padding_mask=padding)),
        'torch_mha_batch_first': (
            nn.MultiheadAttention(32, 2, batch_first=True),
            (torch.randn(2, 5, 32), torch.randn(2, 7, 32),
             torch.randn(2, 7, 32)), dict(attn_mask=torch.randn(5, 7))),
    }


@pytest.mark.parametrize('case', list(_cases()))
def test_attention_matmuls_are_quantized(case):
    torch.manual_seed(0)
    module, args, kwargs = _cases()[case]
    module.eval()
    ref = _first(module(*args, **kwargs)).detach()
    quantize_attention(module)
    # quantizers off: the original forward, bit for bit
    assert torch.equal(_first(module(*args, **kwargs)), ref)
    amax = calibrate(module, lambda m: m(*args, **kwargs))
    assert set(amax) == {f'matmul_quantizers.{op}' for op in 'qkpv'}
    assert all(v > 0 for v in amax.values()), amax
    # the softmax output is a probability: its range is at most 1
    assert amax['matmul_quantizers.p'] <= 1.0
    seen = {}

    def record(op):
        def hook(quantizer, inputs, output):
            seen[op] = (output, quantizer.amax / 127)
        return hook

    for op, quantizer in module.matmul_quantizers.items():
        quantizer.register_forward_hook(record(op))
    out = _first(module(*args, **kwargs))
    assert set(seen) == set('qkpv')  # every operand went through its quantizer
    for op, (value, scale) in seen.items():
        steps = value / scale
        assert torch.allclose(steps, steps.round(), atol=1e-3), op
    cos = F.cosine_similarity(out.flatten(), ref.flatten(), dim=0)
    assert 0.99 < cos < 1.0  # quantized, and still the same attention
    module.train()
    _first(module(*args, **kwargs)).sum().backward()
    assert all(p.grad is not None for p in module.parameters()
               if p.requires_grad and p.dim() > 1)


def test_selection_through_wrappers_and_unsupported():
    from mmcv.cnn.bricks.transformer import MultiheadAttention as MmcvMHA

    class OtherAttention(nn.Module):
        pass

    model = nn.ModuleDict(dict(wrapped=MmcvMHA(32, 2),
                               mine=OtherAttention()))
    decisions = select_attention(model)
    assert decisions['wrapped.attn'] == ''  # the nn.MultiheadAttention inside
    assert 'wrapped' not in decisions  # the wrapper holds a supported one
    assert 'not a supported attention class' in decisions['mine']
    assert decisions == select_attention(model, exclude=['nothing'])
    assert select_attention(model, exclude=['wrapped'])['wrapped.attn'] == \
        'matched by exclude'
    with pytest.raises(ValueError, match='match no attention module'):
        select_attention(model, include=['decoder'])
    with pytest.raises(TypeError, match='supported attention classes'):
        quantize_attention(OtherAttention())
    insert_attention_quantizers(model, decisions)
    query = torch.randn(3, 2, 32)
    calibrate(model, lambda m: m['wrapped'](query))
    assert float(model['wrapped'].attn.matmul_quantizers.v.amax) > 0


def test_unexpected_third_matmul_and_bias_kv_are_refused():
    from mmdet.models.backbones.swin import WindowMSA

    class ExtraMatmul(WindowMSA):

        def forward(self, x, mask=None):
            return super().forward(x) @ torch.eye(x.shape[-1])

    module = ExtraMatmul(32, 2, (4, 4))
    # subclasses are not listed: only the exact classes are known to do
    # exactly two products
    assert 'ExtraMatmul' not in ' '.join(SUPPORTED_ATTENTION)
    with pytest.raises(TypeError):
        quantize_attention(module)
    # forced onto the mode anyway, the third product is an error
    from gpusq_mm.quantization.attention import _MatmulQuantMode
    quantizers = nn.ModuleDict({op: TensorQuantizer() for op in 'qkpv'})
    with pytest.raises(RuntimeError, match='saw a third'):
        with _MatmulQuantMode(quantizers):
            module(torch.randn(2, 16, 32))
    with pytest.raises(TypeError, match='add_bias_kv'):
        quantize_attention(nn.MultiheadAttention(32, 2, add_bias_kv=True))


def test_tensor_quantizer_states():
    quantizer = TensorQuantizer()
    x = torch.linspace(-2, 2, 101)
    assert torch.equal(quantizer(x), x)  # off
    quantizer.enable_calibration()
    assert torch.equal(quantizer(x), x)  # calibration observes only
    assert float(quantizer.amax) == 2.0 and quantizer.calib_calls == 1
    quantizer.load_calib_amax()
    assert quantizer.quant_state == 'off'
    assert quantizer.enable_quant()
    out = quantizer(x)
    assert torch.allclose(out / (2.0 / 127), (out / (2.0 / 127)).round(),
                          atol=1e-4)
    assert 'state=quant' in repr(quantizer)

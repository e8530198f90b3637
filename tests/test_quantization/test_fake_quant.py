"""INT8 fake quantization: exact grid values, STE gradients, calibration."""
import pytest
import torch
from torch import nn

from gpusq_mm.quantization import (QuantLinear, calibrate, fake_quantize,
                                   insert_quantizers, quant_layers,
                                   select_quant_layers)
from gpusq_mm.utils.scope import PATCH_REASON


def test_fake_quantize_hand_computed():
    x = torch.tensor([0.0, 0.5, -1.0, 1.27, 2.0, -3.0], requires_grad=True)
    amax = torch.tensor(1.27)  # scale 0.01
    y = fake_quantize(x, amax)
    assert torch.allclose(y, torch.tensor([0.0, 0.5, -1.0, 1.27, 1.27,
                                           -1.27]))
    y.sum().backward()
    # clipped STE: gradient 1 inside [-amax, amax], 0 outside
    assert torch.equal(x.grad, torch.tensor([1., 1., 1., 1., 0., 0.]))


def test_zero_weights_stay_zero_per_channel():
    w = torch.tensor([[0.0, 1.0, 0.0, -0.5], [2.0, 0.0, 0.0, 0.3]])
    amax = w.abs().amax(1, keepdim=True)
    q = fake_quantize(w, amax)
    assert torch.equal(q == 0, w == 0)
    assert q[0, 3].item() == pytest.approx(round(-0.5 * 127) / 127)


def _toy():
    torch.manual_seed(0)
    model = nn.Sequential()
    model.add_module('patch_embed', nn.Conv2d(3, 32, 4, 4))
    model.add_module('flat', nn.Flatten())
    model.add_module('fc', nn.Linear(32 * 16, 16))
    return model


def test_insert_keeps_parameters_and_calibrates():
    model = _toy()
    params = [id(p) for p in model.parameters()]
    decisions = select_quant_layers(model)
    assert decisions['patch_embed'] == PATCH_REASON
    layers = insert_quantizers(model, decisions)
    assert list(layers) == ['fc'] and isinstance(model.fc, QuantLinear)
    assert [id(p) for p in model.parameters()] == params
    x = torch.randn(2, 3, 16, 16)
    ref = model(x)  # state 'off': float
    feats = model.flat(model.patch_embed(x))
    amax = calibrate(model, lambda m: m(x))
    assert amax['fc'] == pytest.approx(feats.abs().max().item())
    assert quant_layers(model)['fc'].quant_state == 'quant'
    out = model(x)
    assert not torch.equal(out, ref)
    assert torch.allclose(out, ref, atol=0.05)
    assert 'fc.input_quantizer.amax' in model.state_dict()


def test_calibration_rejects_nan():
    model = _toy()
    insert_quantizers(model, select_quant_layers(model))
    x = torch.full((1, 3, 16, 16), float('nan'))
    with pytest.raises(ValueError, match='non-finite'):
        calibrate(model, lambda m: m(x))
    with pytest.raises(ValueError, match='unknown calibrator'):
        calibrate(model, lambda m: m(x), calibrator='kl')


def test_mmcv_wrappers_and_mha_quantized():
    from mmcv.cnn.bricks.wrappers import Linear as MMCVLinear
    model = nn.Module()
    model.ffn = MMCVLinear(32, 64)
    model.attn = nn.MultiheadAttention(32, 2)
    decisions = select_quant_layers(model)
    assert decisions['ffn'] == ''
    # the attention's projections are GEMMs like any other (see
    # test_mha_gemms.py), out_proj included
    assert decisions['attn'] == decisions['attn.out_proj'] == ''
    insert_quantizers(model, decisions)
    assert isinstance(model.ffn, QuantLinear)
    assert isinstance(model.ffn, MMCVLinear)
    x = torch.randn(4, 32)
    calibrate(model, lambda m: m.ffn(x))
    expected = nn.functional.linear(
        fake_quantize(x, x.abs().max()),
        fake_quantize(model.ffn.weight,
                      model.ffn.weight.abs().amax(1, keepdim=True)),
        model.ffn.bias)
    assert torch.equal(model.ffn(x), expected)


def test_calibrators_on_outliers():
    from gpusq_mm.quantization import RunningHistogram, amax_from_histogram
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(100000, generator=gen).abs()
    x[:10] = 50.0  # rare outliers
    hist = RunningHistogram()
    hist.update(x)

    def amax_from_samples(x, method, percentile=99.99):
        return amax_from_histogram(hist.hist, hist.width, method,
                                   float(x.max()), percentile)

    assert amax_from_samples(x, 'max') == 50.0
    p = amax_from_samples(x, 'percentile', 99.9)
    exact = torch.quantile(x.double(), 0.999, interpolation='higher').item()
    assert abs(p - exact) <= hist.width
    assert 3.0 < p < 4.0
    mse = amax_from_samples(x, 'mse')
    ent = amax_from_samples(x, 'entropy')
    assert 0.3 * 50 <= mse < 50 and 0 < ent < 50

    def err(amax):
        return (fake_quantize(x, torch.tensor(amax)) - x).pow(2).mean()

    assert err(mse) < err(50.0)
    with pytest.raises(ValueError, match='unknown calibrator'):
        amax_from_samples(x, 'kl')


@pytest.mark.parametrize('method', ['percentile', 'mse', 'entropy'])
def test_calibrate_with_histogram_methods(method):
    model = _toy()
    insert_quantizers(model, select_quant_layers(model))
    x = torch.randn(4, 3, 16, 16)
    amax = calibrate(model, lambda m: m(x), calibrator=method,
                     percentile=99.0)
    top = model.flat(model.patch_embed(x)).abs().max().item()
    assert 0 < amax['fc'] <= top + 1e-6
    assert quant_layers(model)['fc'].input_quantizer.calib_hist is None


def test_w4a8_weights_use_15_levels():
    model = _toy()
    insert_quantizers(model, select_quant_layers(model), weight_bits=4)
    x = torch.randn(2, 3, 16, 16)
    calibrate(model, lambda m: m(x))
    fc = model.fc
    wq = fake_quantize(fc.weight, fc.weight_quantizer.amax, num_bits=4)
    for row, amax in zip(wq, fc.weight_quantizer.amax.flatten()):
        levels = torch.unique(torch.round(row / (amax / 7)))
        assert levels.numel() <= 15 and levels.abs().max() <= 7
    with pytest.raises(ValueError, match='weight_bits'):
        insert_quantizers(_toy(), {}, weight_bits=2)

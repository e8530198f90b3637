"""gpusq_mm.quantization.quant_layers: the in-place class swap and the three
states of a fake-quantized Linear/Conv2d."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gpusq_mm.quantization.fake_quant import fake_quantize, per_channel_amax
from gpusq_mm.quantization.quant_layers import (QuantConv2d, QuantLinear,
                                                quant_layers, quantize_module,
                                                unsupported_reason)


def _linear() -> nn.Linear:
    torch.manual_seed(0)
    return nn.Linear(16, 8)


def test_swap_keeps_parameters_and_adds_range_buffers():
    layer = _linear()
    weight, bias = layer.weight, layer.bias
    assert quantize_module(layer) is layer
    assert isinstance(layer, QuantLinear) and isinstance(layer, nn.Linear)
    assert layer.weight is weight and layer.bias is bias  # same objects
    assert layer.input_amax.shape == () and layer.weight_amax.shape == (8, 1)
    assert set(layer.state_dict()) == {'weight', 'bias', 'input_amax',
                                       'weight_amax'}
    assert quantize_module(layer) is layer  # idempotent
    conv = quantize_module(nn.Conv2d(4, 6, 3))
    assert isinstance(conv, QuantConv2d)
    assert conv.weight_amax.shape == (6, 1, 1, 1)


def test_off_calib_quant_states():
    layer = quantize_module(_linear())
    x = torch.randn(5, 16) * 3
    ref = F.linear(x, layer.weight, layer.bias)
    assert layer.quant_state == 'off'
    assert torch.equal(layer(x), ref)  # off: float
    layer.quant_state = 'calib'
    assert torch.equal(layer(x), ref)  # calibration observes only
    assert layer.input_amax == x.abs().max() and layer.calib_calls == 1
    layer.update_weight_amax()
    assert torch.equal(layer.weight_amax, per_channel_amax(layer.weight))
    layer.quant_state = 'quant'
    expected = F.linear(fake_quantize(x, layer.input_amax),
                        fake_quantize(layer.weight, layer.weight_amax),
                        layer.bias)
    assert torch.equal(layer(x), expected)
    assert not torch.equal(layer(x), ref)  # quantization did something


def test_int4_weights_use_15_levels_per_channel():
    layer = quantize_module(_linear(), weight_bits=4)
    layer.update_weight_amax()
    layer.quant_state = 'quant'
    q = layer._quant_weight() / (layer.weight_amax / 7)
    assert torch.allclose(q, q.round(), atol=1e-4)
    assert q.round().abs().max() <= 7
    assert all(len(row.round().unique()) <= 15 for row in q)


def test_subclasses_with_their_own_forward_are_refused():

    class Scaled(nn.Linear):

        def forward(self, x):
            return 2 * super().forward(x)

    assert unsupported_reason(Scaled(4, 4)) == 'Scaled has its own forward'
    with pytest.raises(TypeError, match='cannot quantize Scaled: Scaled has '
                       'its own forward'):
        quantize_module(Scaled(4, 4))
    # mmcv's wrapper runs nn.Linear's forward: swapped, still an mmcv Linear
    from mmcv.cnn.bricks.wrappers import Linear as MMCVLinear
    wrapped = quantize_module(MMCVLinear(4, 4))
    assert isinstance(wrapped, QuantLinear) and isinstance(wrapped,
                                                           MMCVLinear)


def test_quant_layers_lists_only_swapped_layers():
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 4))
    quantize_module(model[2])
    assert list(quant_layers(model)) == ['2']

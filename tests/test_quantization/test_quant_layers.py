"""gpusq_mm.quantization.quant_layers: the in-place class swap and the three
states of a fake-quantized Linear/Conv2d, its quantizers and the format 1
range keys."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gpusq_mm.quantization.fake_quant import fake_quantize, per_channel_amax
from gpusq_mm.quantization.quant_layers import (QuantConv2d, QuantLinear,
                                                quant_layers, quantize_module,
                                                unsupported_reason,
                                                upgrade_range_keys)
from gpusq_mm.quantization.tensor_quantizer import TensorQuantizer


def _linear() -> nn.Linear:
    torch.manual_seed(0)
    return nn.Linear(16, 8)


def test_swap_keeps_parameters_and_adds_quantizers():
    layer = _linear()
    weight, bias = layer.weight, layer.bias
    assert quantize_module(layer) is layer
    assert isinstance(layer, QuantLinear) and isinstance(layer, nn.Linear)
    assert layer.weight is weight and layer.bias is bias  # same objects
    assert isinstance(layer.input_quantizer, TensorQuantizer)
    assert layer.input_quantizer.amax.shape == ()
    assert layer.weight_quantizer.amax.shape == (8, 1)
    assert set(layer.state_dict()) == {'weight', 'bias',
                                       'input_quantizer.amax',
                                       'weight_quantizer.amax'}
    assert quantize_module(layer) is layer  # idempotent
    conv = quantize_module(nn.Conv2d(4, 6, 3))
    assert isinstance(conv, QuantConv2d)
    assert conv.weight_quantizer.amax.shape == (6, 1, 1, 1)


def test_off_calib_quant_states():
    layer = quantize_module(_linear())
    x = torch.randn(5, 16) * 3
    ref = F.linear(x, layer.weight, layer.bias)
    assert layer.quant_state == 'off'
    assert torch.equal(layer(x), ref)  # off: float
    layer.enable_calibration()
    assert layer.quant_state == 'calib'
    assert torch.equal(layer(x), ref)  # calibration observes only
    assert layer.input_quantizer.amax == x.abs().max()
    assert layer.input_quantizer.calib_calls == 1
    layer.load_calib_amax()
    assert layer.quant_state == 'off'
    assert torch.equal(layer.weight_quantizer.amax,
                       per_channel_amax(layer.weight))
    assert layer.enable_quant()
    expected = F.linear(fake_quantize(x, layer.input_quantizer.amax),
                        fake_quantize(layer.weight,
                                      layer.weight_quantizer.amax),
                        layer.bias)
    assert torch.equal(layer(x), expected)
    assert not torch.equal(layer(x), ref)  # quantization did something
    layer.disable()
    assert torch.equal(layer(x), ref)


def test_uncalibrated_layer_stays_float():
    layer = quantize_module(_linear())
    layer.enable_calibration()
    layer.load_calib_amax()  # the forward never ran: range 0
    assert not layer.enable_quant()
    assert layer.quant_state == 'off'
    assert layer.weight_quantizer.quant_state == 'off'


def test_per_channel_quantizer_records_channel_max_without_histogram():
    quantizer = TensorQuantizer(channels=3)
    w = torch.tensor([[1., -4.], [0.5, 0.25], [-2., 2.]])
    quantizer.enable_calibration()
    quantizer(w)
    assert quantizer.amax.flatten().tolist() == [4.0, 0.5, 2.0]
    with pytest.raises(ValueError, match='per-channel'):
        quantizer.enable_calibration(bins=64)


def test_int4_weights_use_15_levels_per_channel():
    layer = quantize_module(_linear(), weight_bits=4)
    assert layer.weight_bits == 4
    layer.calibrate_weight()
    layer.weight_quantizer.enable_quant()
    q = layer.quant_weight() / (layer.weight_quantizer.amax / 7)
    assert torch.allclose(q, q.round(), atol=1e-4)
    assert q.round().abs().max() <= 7
    assert all(len(row.round().unique()) <= 15 for row in q)


def _legacy(state: dict) -> dict:
    """The state dict as format 1 wrote it (ranges as layer buffers)."""
    return {k.replace('input_quantizer.amax', 'input_amax')
            .replace('weight_quantizer.amax', 'weight_amax'): v
            for k, v in state.items()}


def test_format_1_range_keys_load_into_quantizers():
    """Checkpoints of format 1 hold ``<layer>.input_amax`` and
    ``<layer>.weight_amax``; they load bit-identically, strictly."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 4))
    for layer in (model[0], model[2]):
        quantize_module(layer)
        layer.enable_calibration()
    model(torch.randn(6, 16))
    for layer in (model[0], model[2]):
        layer.load_calib_amax()
    old = _legacy(model.state_dict())
    assert '0.input_amax' in old and '2.weight_amax' in old
    fresh = nn.Sequential(nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 4))
    for layer in (fresh[0], fresh[2]):
        quantize_module(layer)
    fresh.load_state_dict(old)  # strict
    for key, value in model.state_dict().items():
        assert torch.equal(fresh.state_dict()[key], value), key
    # the same map, as a function on a whole state dict
    assert list(upgrade_range_keys(old)) == list(model.state_dict())
    assert upgrade_range_keys({'head.weight_amax_x': 1}) == {
        'head.weight_amax_x': 1}


def test_unknown_range_key_still_fails_strict_loading():
    layer = quantize_module(_linear())
    state = _legacy(layer.state_dict())
    state['bogus_amax'] = state.pop('input_amax')
    with pytest.raises(RuntimeError, match='bogus_amax'):
        layer.load_state_dict(state)


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

"""Layers applied with ``F.linear`` by their parent block: adapted blocks
quantize input and weight, other blocks leave the layer reported float,
never ``amax=0`` shown as quantized."""
import torch
import torch.nn.functional as F
from torch import nn

from gpusq_mm.quantization import (calibrate, fake_quantize, functional_linear,
                                   insert_quantizers, select_quant_layers,
                                   uncalibrated)
from gpusq_mm.quantization.calibrate import NEVER_CALLED


class FunctionalQKV(nn.Module):
    """Like BEiT's attention: the qkv bias is built on the fly."""

    def __init__(self) -> None:
        super().__init__()
        self.qkv = nn.Linear(32, 96, bias=False)
        self.q_bias = nn.Parameter(torch.randn(32))
        self.proj = nn.Linear(96, 32)

    def forward(self, x):
        bias = torch.cat([self.q_bias, torch.zeros(64)])
        return self.proj(F.linear(x, weight=self.qkv.weight, bias=bias))


def _quantized(x):
    torch.manual_seed(0)
    model = nn.Sequential(FunctionalQKV())
    keys = set(model.state_dict())
    insert_quantizers(model, select_quant_layers(model))
    calibrate(model, lambda m: m(x))
    return model, keys


def test_unadapted_block_leaves_layer_float_and_reported():
    x = torch.randn(4, 32)
    model, _ = _quantized(x)
    assert uncalibrated(model) == {'0.qkv': NEVER_CALLED}
    assert model[0].qkv.quant_state == 'off'
    assert model[0].proj.quant_state == 'quant'


def test_adapted_block_quantizes_input_and_weight(monkeypatch):
    name = f'{FunctionalQKV.__module__}.{FunctionalQKV.__qualname__}'
    monkeypatch.setattr(functional_linear, 'FUNCTIONAL_LINEAR_BLOCKS',
                        [name])
    x = torch.randn(4, 32)
    model, keys = _quantized(x)
    block = model[0]
    assert uncalibrated(model) == {}
    assert block.qkv.quant_state == 'quant'
    assert float(block.qkv.input_quantizer.amax) == float(x.abs().max())
    bias = torch.cat([block.q_bias, torch.zeros(64)])
    hidden = F.linear(fake_quantize(x, block.qkv.input_quantizer.amax),
                      fake_quantize(block.qkv.weight,
                                    block.qkv.weight_quantizer.amax),
                      bias)
    expected = F.linear(fake_quantize(hidden, block.proj.input_quantizer.amax),
                        fake_quantize(block.proj.weight,
                                      block.proj.weight_quantizer.amax),
                        block.proj.bias)
    assert torch.equal(model(x), expected)
    # the qkv output is recorded once, by proj
    assert float(block.proj.input_quantizer.amax) == float(
        F.linear(x, block.qkv.weight, bias).detach().abs().max())
    assert keys <= set(model.state_dict())  # same keys, plus the ranges

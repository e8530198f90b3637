"""2:4 masks: exact pattern along input channels, deterministic ties."""
import pytest
import torch
from torch import nn

from gpusq_mm.sparsity import (count_violations, find_layers, is_24_sparse,
                               kept_magnitude, magnitude_mask)


def test_linear_mask_hand_computed():
    w = torch.tensor([[1., -5., 3., 0.5, 0., 0., 2., -2.],
                      [4., 4., 4., 4., -1., 2., -3., 0.1]])
    expected = torch.tensor([[0, 1, 1, 0, 0, 0, 1, 1],
                             [1, 1, 0, 0, 0, 1, 1, 0]], dtype=torch.bool)
    mask = magnitude_mask(w)
    assert torch.equal(mask, expected)
    assert is_24_sparse(w * mask)
    assert count_violations(w) == 3
    assert kept_magnitude(w, mask) == pytest.approx(
        (5 + 3 + 2 + 2 + 4 + 4 + 2 + 3) / w.abs().sum().item())


def test_conv_groups_run_along_input_channels():
    torch.manual_seed(0)
    w = torch.randn(8, 16, 3, 3)
    mask = magnitude_mask(w)
    assert mask.shape == w.shape
    # every (out channel, kh, kw) position keeps exactly 2 of each 4 C
    per_group = mask.permute(0, 2, 3, 1).reshape(8, 3, 3, 4, 4).sum(-1)
    assert torch.all(per_group == 2)
    # grouping along a spatial axis instead would not be 2:4 along C
    bad = torch.zeros_like(w)
    bad[:, 0:4, 0, 0] = 1.0
    assert count_violations(bad) == 8


def test_not_divisible_raises():
    with pytest.raises(ValueError, match='multiple of 4'):
        magnitude_mask(torch.randn(8, 6))


def test_eligibility_reasons():
    model = nn.Sequential()
    model.add_module('patch_embed', nn.Conv2d(3, 64, 4, 4))
    model.add_module('fc', nn.Linear(64, 128))
    model.add_module('tiny', nn.Linear(16, 16))
    model.add_module('odd', nn.Linear(72, 64))
    model.add_module('dw', nn.Conv2d(64, 64, 3, groups=64))
    model.add_module('head', nn.Linear(128, 10))
    decisions = {d.name[:-len('.weight')]: d
                 for d in find_layers(model, min_channels=32)}
    assert decisions['fc'].eligible
    assert not decisions['patch_embed'].eligible
    assert 'too small' in decisions['tiny'].reason
    assert 'not a multiple of 16' in decisions['odd'].reason
    assert 'depthwise' in decisions['dw'].reason
    assert 'too small' in decisions['head'].reason
    decisions = find_layers(model, exclude=['fc'])
    assert [d.reason for d in decisions if d.name == 'fc.weight'] == [
        'matched by exclude']
    with pytest.raises(ValueError, match='match no Linear/Conv2d'):
        find_layers(model, include=['backbone\\.'])
    with pytest.raises(ValueError, match='not 2:4 eligible.*in=16'):
        find_layers(model, include=['tiny'])

"""Mask methods: gradual ramp, SR-STE gradients, function-preserving
permutation, Sparsifier state round trip."""
import pytest
import torch
from torch import nn

from gpusq_mm.sparsity import (apply_permutation, count_violations,
                               find_ffn_pairs, find_layers, gradual_fraction,
                               gradual_mask, kept_magnitude, magnitude_mask,
                               search_permutation, srste_weight)
from gpusq_mm.sparsity.sparsifier import Sparsifier
from gpusq_mm.sparsity.srste import add_srste_decay


def test_gradual_fraction_cubic():
    assert gradual_fraction(0, 100) == 0.0
    assert gradual_fraction(50, 100) == pytest.approx(1 - 0.5**3)
    assert gradual_fraction(100, 100) == 1.0
    assert gradual_fraction(150, 100) == 1.0


def test_gradual_mask_prunes_cheapest_groups_first():
    w = torch.tensor([[1., 1., 1., 1., 9., 9., 0.1, 0.1],
                      [5., 4., 3., 2., 8., 7., 6., 5.]])
    # pruning costs per group: [2, 0.2, 5, 11]: half = the first two
    half = gradual_mask(w, 0.5)
    expected = torch.tensor([[1, 1, 0, 0, 1, 1, 0, 0],
                             [1, 1, 1, 1, 1, 1, 1, 1]], dtype=torch.bool)
    assert torch.equal(half, expected)
    assert torch.equal(gradual_mask(w, 0.0), torch.ones_like(w).bool())
    assert torch.equal(gradual_mask(w, 1.0), magnitude_mask(w))


def test_srste_gradient():
    w = torch.tensor([[1.0, -2.0, 3.0, 0.5]], requires_grad=True)
    mask = torch.tensor([[False, True, True, False]])
    out = srste_weight(w, mask)
    assert torch.equal(out.detach(), torch.tensor([[0.0, -2.0, 3.0, 0.0]]))
    out.backward(torch.ones_like(out))
    # straight-through: the pruned weights get the dense gradient
    assert torch.equal(w.grad, torch.ones_like(w))
    # the decay is added at the optimizer step, to unscaled gradients
    add_srste_decay({'w': w}, {'w': mask}, 0.1)
    assert torch.allclose(w.grad, torch.tensor([[1.1, 1.0, 1.0, 1.05]]))


def _mmcv_ffn():
    from mmcv.cnn.bricks.transformer import FFN
    return FFN(embed_dims=64, feedforward_channels=256)


def _mix_ffn():
    from mmseg.models.backbones.mit import MixFFN
    return MixFFN(embed_dims=32, feedforward_channels=128)


@pytest.mark.parametrize('build,inputs', [
    (_mmcv_ffn, lambda: (torch.randn(2, 7, 64), )),
    (_mix_ffn, lambda: (torch.randn(2, 16, 32), (4, 4))),
])
def test_permutation_keeps_function_and_raises_kept_magnitude(build, inputs):
    torch.manual_seed(0)
    model = nn.Module()
    model.block = build().eval()
    args = inputs()
    ref = model.block(*args)
    pairs = find_ffn_pairs(model)
    assert len(pairs) == 1
    weight = model.get_parameter(pairs[0].consumer)
    before = kept_magnitude(weight, magnitude_mask(weight))
    perm = search_permutation(weight, iters=30)
    assert sorted(perm.tolist()) == list(range(weight.shape[1]))
    apply_permutation(model, pairs[0], perm)
    after = kept_magnitude(weight, magnitude_mask(weight))
    assert after > before
    assert (model.block(*args) - ref).abs().max() <= 1e-5


def test_sparsifier_methods_and_state(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 32))
    decisions = find_layers(model)
    sp = Sparsifier('gradual', ramp_iters=10, recompute_interval=5)
    sp.compute(model, decisions, step=5)
    assert not sp.frozen
    sp.apply([model])
    assert count_violations(model[0].weight) > 0  # ramp not finished
    assert sp.due(10) and not sp.due(7)
    sp.compute(model, decisions, step=10)
    sp.apply([model])
    assert sp.frozen and not sp.due(20)
    assert all(v == 0 for v in sp.verify(model).values())

    other = Sparsifier('gradual')
    other.load_state_dict(sp.state_dict(), model)
    assert other.frozen and other.masks.keys() == sp.masks.keys()
    with pytest.raises(ValueError, match='another model'):
        other.load_state_dict(sp.state_dict(), nn.Linear(64, 64))
    with pytest.raises(ValueError, match="set method='gradual' to resume"):
        Sparsifier('magnitude').load_state_dict(sp.state_dict(), model)
    with pytest.raises(ValueError, match='unknown 2:4 method'):
        Sparsifier('random')


def test_srste_forward_uses_sparse_weight_and_trains_dense():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 64))
    sp = Sparsifier('srste', srste_decay=0.0)
    sp.compute(model, find_layers(model))
    sp.attach(model)
    dense = model[0].weight.detach().clone()
    x = torch.randn(3, 64)
    expected = nn.functional.linear(x, dense * sp.masks['0.weight'],
                                    model[0].bias)
    out = model(x)
    assert torch.equal(out, expected)
    assert isinstance(model[0].weight, nn.Parameter)  # restored after fwd
    out.sum().backward()
    assert (model[0].weight.grad[~sp.masks['0.weight']] != 0).any()
    sp.harden([model])
    sp.detach()
    assert count_violations(model[0].weight) == 0


def test_methods_table_builds_each_strategy_with_its_options():
    from gpusq_mm.sparsity.methods import (METHODS, GradualMethod,
                                           SparsityMethod, build_method)
    assert tuple(METHODS) == ('magnitude', 'permutation', 'srste',
                              'gradual')
    options = dict(recompute_interval=None, ramp_iters=20, srste_decay=0.1,
                   permutation_iters=3)
    for name, cls in METHODS.items():
        method = build_method(name, **options)  # the others are ignored
        assert type(method) is cls and isinstance(method, SparsityMethod)
        assert method.name == name
    assert build_method('srste', **options).recompute_interval == 100
    assert build_method('srste', **options).srste_decay == 0.1
    assert build_method('permutation', **options).permutation_iters == 3
    gradual = build_method('gradual', **options)
    assert isinstance(gradual, GradualMethod) and gradual.ramps
    assert gradual.recompute_interval == 2
    assert [gradual.due(s) for s in (1, 2, 3, 20, 21)] == [
        False, True, False, True, True]
    assert gradual.fraction(0) == 0 and gradual.final(20)
    assert not gradual.final(19)
    magnitude = build_method('magnitude', **options)
    assert not magnitude.due(100) and magnitude.final(0) is False
    assert magnitude.zeroes_weights() and \
        not build_method('srste').zeroes_weights()
    with pytest.raises(ValueError, match="unknown 2:4 method 'l1'; choose "
                       "one of \\('magnitude'"):
        build_method('l1')

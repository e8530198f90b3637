"""gpusq_mm.sparsity.sparsifier: the 2:4 state of a model (masks, zeroing,
hardening, state round trip, refusal of masks that do not fit)."""
import pytest
import torch
from torch import nn

from gpusq_mm.sparsity import count_violations, find_layers
from gpusq_mm.sparsity.sparsifier import Sparsifier


def _model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 32))


def test_compute_apply_verify():
    model = _model()
    sp = Sparsifier('magnitude')
    kept = sp.compute(model, find_layers(model))
    assert sorted(sp.masks) == ['0.weight', '2.weight']
    for name, mask in sp.masks.items():
        groups = mask.reshape(mask.shape[0], -1, 4)
        assert (groups.sum(-1) == 2).all()  # exactly 2 of every 4
        assert 0.5 < kept[name] < 1.0  # magnitude: more than half kept
    assert set(sp.verify(model).values()) != {0}  # still dense
    sp.apply([model])
    assert sp.verify(model) == {'0.weight': 0, '2.weight': 0}
    # the kept weights are the two largest of each group
    w = dict(model.named_parameters())['0.weight'].reshape(64, -1, 4)
    assert (w.abs().sort(-1).values[..., :2] == 0).all()


def test_srste_keeps_dense_weights_until_hardened():
    model = _model()
    sp = Sparsifier('srste')
    sp.compute(model, find_layers(model))
    sp.apply([model])  # srste: the dense weights keep training
    assert count_violations(model[0].weight) > 0
    sparse = sp.sparse_weights(model)
    assert count_violations(sparse['0.weight']) == 0
    sp.harden([model])
    assert torch.equal(model[0].weight, sparse['0.weight'])


def test_state_round_trip_and_misfit_checkpoints():
    model = _model()
    sp = Sparsifier('magnitude')
    sp.compute(model, find_layers(model))
    state = sp.state_dict()
    other = Sparsifier('magnitude')
    other.load_state_dict(state, _model(1))
    assert all(torch.equal(other.masks[k], v) for k, v in sp.masks.items())
    with pytest.raises(ValueError, match="written with method='magnitude' "
                       "but the config says method='gradual'"):
        Sparsifier('gradual').load_state_dict(state, _model())
    wider = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 32))
    with pytest.raises(ValueError, match=r"mask for '0.weight' of shape "
                       r'\(64, 64\) but the model has \(128, 64\)'):
        Sparsifier('magnitude').load_state_dict(state, wider)
    with pytest.raises(ValueError, match="unknown 2:4 method 'l1'"):
        Sparsifier('l1')


def test_gradual_ramps_then_freezes():
    model = _model()
    sp = Sparsifier('gradual', ramp_iters=10)
    decisions = find_layers(model)
    sp.compute(model, decisions, step=0)
    assert all(m.all() for m in sp.masks.values())  # nothing pruned yet
    assert sp.due(1) and not sp.due(0)
    sp.compute(model, decisions, step=5)
    pruned = sum(int((~m).sum()) for m in sp.masks.values())
    assert 0 < pruned < sum(m.numel() for m in sp.masks.values()) // 2
    sp.compute(model, decisions, step=10)
    assert sp.frozen and not sp.due(20)
    assert all((m.reshape(m.shape[0], -1, 4).sum(-1) == 2).all()
               for m in sp.masks.values())

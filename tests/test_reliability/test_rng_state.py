"""Generator capture/restore, isolated seeded blocks, and RNGStateHook on a
toy whose loss draws from Python, NumPy and torch generators."""
import json
import os.path as osp
import random

import numpy as np
import pytest
import torch
from torch import nn

import gpusq_mm  # noqa: F401
import tests.test_reliability.probe_hooks  # noqa: F401  (LossRecorderHook)
from gpusq_mm.utils import load_checkpoint_file
from gpusq_mm.utils.rng import get_rng_state, isolated_rng, set_rng_state
from tests.test_engine.toy import ToyNet, train_toy


def _draws() -> tuple:
    return (random.random(), float(np.random.rand()), float(torch.rand(1)))


def test_state_round_trip_through_a_safe_checkpoint(tmp_path):
    torch.manual_seed(3)
    np.random.seed(3)
    random.seed(3)
    path = str(tmp_path / 'rng.pth')
    torch.save(dict(rng=get_rng_state()), path)
    expected = [_draws() for _ in range(3)]
    set_rng_state(load_checkpoint_file(path)['rng'])  # weights_only load
    assert [_draws() for _ in range(3)] == expected


def test_isolated_rng_is_seeded_and_leaves_the_stream():
    torch.manual_seed(0)
    np.random.seed(0)
    random.seed(0)
    state = get_rng_state()
    plain = [_draws() for _ in range(2)]
    set_rng_state(state)
    with isolated_rng(7):
        inner = _draws()
    with isolated_rng(7):
        assert _draws() == inner  # same block, same numbers
    assert [_draws() for _ in range(2)] == plain  # stream untouched
    with pytest.raises(ValueError, match='lacks'):
        set_rng_state(dict(torch=torch.get_rng_state()))


class NoisyToy(ToyNet):
    """ToyNet whose loss draws from every generator (dropout, numpy and
    Python noise), like augmentations and RoI samplers do."""

    def forward(self, inputs, data_samples=None, mode='tensor'):
        x = nn.functional.dropout(self.patch_embed(inputs).flatten(1), 0.5,
                                  self.training)
        out = self.head(torch.relu(self.fc2(torch.relu(self.fc1(x)))))
        if mode == 'loss':
            noise = np.random.rand() + random.random()
            return dict(loss=nn.functional.cross_entropy(out, data_samples)
                        + 1e-3 * noise)
        return out


def _losses(work: str) -> dict:
    with open(osp.join(work, 'losses.jsonl')) as f:
        return {r['iter']: r['loss'] for r in map(json.loads, f)}


def _run(work, rng_hook, by_epoch, resume=False):
    hooks = [dict(type='LossRecorderHook')]
    if rng_hook:
        hooks.append(dict(type='RNGStateHook'))
    torch.manual_seed(0)  # same initial weights in every run
    kw = dict(model=NoisyToy())
    if by_epoch:  # 16 samples, batch 4: 4 iterations per epoch
        kw.update(train_cfg=dict(by_epoch=True, max_epochs=2),
                  default_hooks=dict(checkpoint=dict(
                      type='CheckpointHook', by_epoch=True, interval=1)))
    ckpt = 'epoch_1.pth' if by_epoch else 'iter_2.pth'
    if resume:
        kw.update(resume=True, load_from=osp.join(work, ckpt))
    train_toy(work, hooks, max_iters=4, **kw)


@pytest.mark.parametrize('by_epoch', [False, True])
def test_resume_continues_the_random_stream(tmp_path, by_epoch):
    ref, cut = str(tmp_path / 'ref'), str(tmp_path / 'cut')
    _run(ref, True, by_epoch)
    _run(cut, True, by_epoch)
    ckpt = load_checkpoint_file(osp.join(
        cut, 'epoch_1.pth' if by_epoch else 'iter_2.pth'))
    assert len(ckpt['gpusq_rng']['ranks']) == 1
    first = _losses(cut)
    _run(cut, True, by_epoch, resume=True)
    resumed = _losses(cut)
    assert resumed == _losses(ref) and len(resumed) == len(first)


def test_control_without_the_hook_the_resumed_loss_differs(tmp_path):
    ref, cut = str(tmp_path / 'ref'), str(tmp_path / 'cut')
    _run(ref, False, False)
    _run(cut, False, False)
    _run(cut, False, False, resume=True)
    assert _losses(cut)[3] != _losses(ref)[3]



def test_other_world_size_restores_rank0_with_a_warning(tmp_path,
                                                        monkeypatch):
    from gpusq_mm.engine.hooks import rng_state_hook
    messages = []
    monkeypatch.setattr(rng_state_hook, 'print_log',
                        lambda msg, *a, **k: messages.append(msg))
    work = str(tmp_path)
    _run(work, True, False)
    path = osp.join(work, 'iter_2.pth')
    ckpt = load_checkpoint_file(path)
    ckpt['gpusq_rng']['ranks'] *= 2  # as if written by 2 ranks
    torch.save(ckpt, path)
    _run(work, True, False, resume=True)  # must not fail
    assert sorted(_losses(work)) == [1, 2, 3, 4]
    assert any('generator states of 2 rank(s), this run has 1' in m
               for m in messages), messages

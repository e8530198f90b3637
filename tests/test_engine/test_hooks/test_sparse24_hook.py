"""Sparse24Hook in a real Runner: 2:4 after training, in the EMA model, after
resume; clear errors for bad input."""
import os.path as osp

import pytest
import torch

import gpusq_mm  # noqa: F401
from gpusq_mm.sparsity import count_violations
from gpusq_mm.utils import load_checkpoint_file
from tests.test_engine.toy import train_toy

ELIGIBLE = ['fc1.weight', 'fc2.weight']


def test_masks_enforced_saved_and_restored(tmp_path):
    work = str(tmp_path)
    hooks = [dict(type='Sparse24Hook', start_iter=1),
             dict(type='EMAHook', momentum=0.5)]
    runner = train_toy(work, hooks)
    model = runner.model
    for name in ELIGIBLE:
        assert count_violations(model.get_parameter(name)) == 0
    # layers that are not eligible keep their dense weights
    assert count_violations(model.head.weight) > 0
    ckpt = load_checkpoint_file(osp.join(work, 'iter_4.pth'))
    assert sorted(ckpt['gpusq_sparse24']['masks']) == ELIGIBLE
    assert ckpt['meta']['gpusq']['sparsity']['layers'] == ELIGIBLE
    for name in ELIGIBLE:
        assert count_violations(ckpt['state_dict'][name]) == 0
        # EMAHook swaps the averaged weights into `state_dict` (checked
        # above) and the raw ones into `ema_state_dict`: both are 2:4
        raw = ckpt['ema_state_dict'][f'module.{name}']
        assert count_violations(raw) == 0
        assert not torch.equal(raw, ckpt['state_dict'][name])
    masks = ckpt['gpusq_sparse24']['masks']

    resumed = train_toy(work, [dict(type='Sparse24Hook', start_iter=1)],
                     max_iters=6, resume=True,
                     load_from=osp.join(work, 'iter_4.pth'))
    hook = [h for h in resumed.hooks if type(h).__name__ == 'Sparse24Hook'][0]
    for name in ELIGIBLE:
        assert torch.equal(hook.masks[name], masks[name])
    assert all(v == 0 for v in hook.verify(resumed).values())


def test_mask_of_another_model_is_refused(tmp_path):
    work = str(tmp_path)
    train_toy(work, [dict(type='Sparse24Hook')])
    path = osp.join(work, 'iter_4.pth')
    ckpt = load_checkpoint_file(path)
    ckpt['gpusq_sparse24']['masks']['fc2.weight'] = torch.ones(8, 16,
                                                        dtype=torch.bool)
    bad = str(tmp_path / 'bad.pth')
    torch.save(ckpt, bad)
    with pytest.raises(ValueError, match="'fc2.weight'"):
        train_toy(work, [dict(type='Sparse24Hook')], max_iters=6, resume=True,
               load_from=bad)
    assert load_checkpoint_file(path)['meta']['iter'] == 4  # untouched


@pytest.mark.parametrize('kwargs,message', [
    (dict(method='sparsegpt'), 'unknown 2:4 method'),
    (dict(start_iter=-1), 'non-negative'),
    (dict(start_iter=1, start_epoch=1), 'not both'),
])
def test_bad_arguments(kwargs, message):
    from gpusq_mm import Sparse24Hook
    with pytest.raises(ValueError, match=message):
        Sparse24Hook(**kwargs)


def test_start_past_schedule_and_unmatched_include(tmp_path):
    with pytest.raises(ValueError, match='past the schedule'):
        train_toy(str(tmp_path / 'a'), [dict(type='Sparse24Hook',
                                          start_iter=10)])
    with pytest.raises(ValueError, match='match no Linear'):
        train_toy(str(tmp_path / 'b'), [dict(type='Sparse24Hook',
                                          include=['backbone'])])
    with pytest.raises(ValueError, match="'head'.*not 2:4 eligible"):
        train_toy(str(tmp_path / 'c'), [dict(type='Sparse24Hook',
                                          include=['fc', 'head'])])


def test_srste_checkpoints_sparse_weights_and_resumes_dense(tmp_path):
    work = str(tmp_path)
    hooks = [dict(type='Sparse24Hook', method='srste', recompute_interval=2,
                  srste_decay=0.01)]
    runner = train_toy(work, hooks)
    ckpt = load_checkpoint_file(osp.join(work, 'iter_4.pth'))
    state = ckpt['gpusq_sparse24']
    for name in ELIGIBLE:
        sparse = ckpt['state_dict'][name]
        assert count_violations(sparse) == 0
        assert torch.equal(sparse, state['dense'][name] * state['masks'][name])
        assert count_violations(state['dense'][name]) > 0
        # after training the model itself is hardened to 2:4
        assert count_violations(runner.model.get_parameter(name)) == 0
    resumed = train_toy(work, hooks, max_iters=6, resume=True,
                        load_from=osp.join(work, 'iter_4.pth'))
    final = load_checkpoint_file(osp.join(work, 'iter_6.pth'))
    for name in ELIGIBLE:
        assert count_violations(final['state_dict'][name]) == 0
        # SR-STE kept training the dense weights restored from iter_4
        assert not torch.equal(final['gpusq_sparse24']['dense'][name],
                               state['dense'][name])
    hook = next(h for h in resumed.hooks
                if type(h).__name__ == 'Sparse24Hook')
    assert all(v == 0 for v in hook.verify(resumed).values())


def test_gradual_ramps_then_freezes(tmp_path):
    work = str(tmp_path)
    train_toy(work, [dict(type='Sparse24Hook', method='gradual',
                          ramp_iters=4, recompute_interval=1)], max_iters=6)
    mid = load_checkpoint_file(osp.join(work, 'iter_2.pth'))
    end = load_checkpoint_file(osp.join(work, 'iter_6.pth'))
    assert not mid['meta']['gpusq']['sparsity']['complete']
    assert any(count_violations(mid['state_dict'][n]) for n in ELIGIBLE)
    assert end['meta']['gpusq']['sparsity']['complete']
    assert end['gpusq_sparse24']['frozen']
    for name in ELIGIBLE:
        assert count_violations(end['state_dict'][name]) == 0


def test_gradient_accumulation(tmp_path):
    runner = train_toy(
        str(tmp_path), [dict(type='Sparse24Hook', start_iter=1)],
        max_iters=5,
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1, momentum=0.9),
                           accumulative_counts=2))
    for name in ELIGIBLE:
        assert count_violations(runner.model.get_parameter(name)) == 0


def test_masking_after_iter_0_resets_moments_and_masks_grads(tmp_path):
    # AdamW with clip_grad, masks from iteration 2: the moments built by
    # the dense steps are reset for pruned weights, and stay zero over the
    # two masked steps (their gradients are masked before the step)
    runner = train_toy(
        str(tmp_path), [dict(type='Sparse24Hook', start_iter=2)],
        max_iters=4,
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=0.01),
                           clip_grad=dict(max_norm=1.0)))
    hook = next(h for h in runner.hooks if type(h).__name__ == 'Sparse24Hook')
    state = runner.optim_wrapper.optimizer.state
    for name in ELIGIBLE:
        param = runner.model.get_parameter(name)
        pruned = ~hook.masks[name]
        assert not state[param]['exp_avg'][pruned].any(), name
        assert not state[param]['exp_avg_sq'][pruned].any(), name
        assert state[param]['exp_avg'][~pruned].any(), name


def test_srste_decay_once_per_optim_wrapper_step():
    """MMEngine's OptimWrapper with accumulative_counts=2: the SR-STE decay
    is added at its one optimizer step, like a single fp32 step."""
    from mmengine.optim import OptimWrapper
    from torch import nn

    from gpusq_mm.sparsity import find_layers
    from gpusq_mm.sparsity.sparsifier import Sparsifier

    def run(counts: int) -> torch.Tensor:
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(32, 16))
        wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.5),
                               accumulative_counts=counts)
        sp = Sparsifier('srste', srste_decay=0.1)
        sp.compute(model, find_layers(model, min_channels=8))
        sp.attach(model, [wrapper.optimizer])
        x = torch.randn(8, 32, generator=torch.Generator().manual_seed(1))
        for chunk in x.chunk(counts):
            wrapper.update_params(model(chunk).pow(2).mean())
        return model[0].weight.detach()

    torch.testing.assert_close(run(2), run(1))

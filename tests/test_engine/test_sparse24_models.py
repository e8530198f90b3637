"""Sparse24Hook on real OpenMMLab transformers (tiny sizes): every eligible
weight is 2:4 after training, in the EMA model and after ``--resume``."""
import os.path as osp
import re

import pytest
import torch

import gpusq_mm  # noqa: F401
from gpusq_mm.sparsity import count_violations
from gpusq_mm.utils import load_checkpoint_file
from tests.utils import train_demo

# config, method, weights that must be among the pruned ones
CASES = {
    'mask_rcnn_swin': ('mask_rcnn_swin_tiny_dense.py', 'permutation',
                       ['backbone.stages.2.blocks.1.ffn.layers.1.weight',
                        'roi_head.mask_head.convs.0.conv.weight']),
    'segformer': ('segformer_tiny_dense.py', 'permutation',
                  ['backbone.layers.1.1.0.attn.attn.in_proj_weight',
                   'backbone.layers.1.1.0.ffn.layers.4.weight']),
    'deit': ('deit_tiny_dense.py', 'magnitude',
             ['backbone.layers.1.ffn.layers.0.0.weight',
              'backbone.layers.1.attn.qkv.weight']),
    'dino': ('dino_swin_tiny_dense.py', 'permutation',
             ['decoder.layers.1.self_attn.attn.in_proj_weight',
              'encoder.layers.0.self_attn.value_proj.weight',
              'decoder.layers.1.ffn.layers.1.weight']),
    'upernet_swin': ('upernet_swin_tiny_dense.py', 'gradual',
                     ['backbone.stages.3.blocks.0.ffn.layers.1.weight',
                      'decode_head.fpn_bottleneck.conv.weight']),
    'swin_cls': ('swin_tiny_cls_dense.py', 'srste',
                 ['backbone.stages.2.blocks.1.attn.w_msa.qkv.weight']),
}


# gradual: full 2:4 two iterations after the start (masks freeze then)
METHOD_ARGS = dict(gradual=dict(ramp_iters=2, recompute_interval=1))
# cases whose expected layers lie outside the default scope ('backbone')
SCOPE_ALL = ('mask_rcnn_swin', 'dino', 'upernet_swin')


def _run(config, method, work, units, resume_from=None, scope='backbone'):
    hooks = [
        dict(type='Sparse24Hook', method=method, permutation_iters=10,
             start_iter=1,  # after EMAHook's first update
             scope=scope, **METHOD_ARGS.get(method, {})),
        dict(type='EMAHook', momentum=0.1, priority='NORMAL')
    ]
    return train_demo(config, work, hooks, units, resume_from)


@pytest.mark.slow
@pytest.mark.parametrize('case', list(CASES))
def test_sparse24_on_model(case, data_cwd, tmp_path, monkeypatch):
    monkeypatch.chdir(data_cwd)
    config, method, expected = CASES[case]
    work = str(tmp_path / 'work')
    scope = 'all' if case in SCOPE_ALL else 'backbone'
    _run(config, method, work, units=2, scope=scope)
    with open(osp.join(work, 'last_checkpoint')) as f:
        last = f.read().strip()
    ckpt = load_checkpoint_file(last)
    layers = ckpt['meta']['gpusq']['sparsity']['layers']
    assert set(expected) <= set(layers)
    if scope == 'backbone':
        assert all(n.startswith('backbone.') for n in layers)
        # patch embeddings (MiT: layers.N.0) and patch merging stay dense
        patch = r'patch_embed|downsample|layers\.\d+\.0\.proj'
        assert not any(re.search(patch, n) for n in layers)
    for name in layers:
        assert count_violations(ckpt['state_dict'][name]) == 0, name
        # EMAHook swapped: ema_state_dict holds the raw weights, both 2:4
        raw = ckpt['ema_state_dict'][f'module.{name}']
        assert count_violations(raw) == 0, name
        if method == 'permutation' and '.ffn.' in name:
            # the averaged copy was permuted alike: after a few small steps
            # it is close to the raw weights, not a channel-shuffled average
            ema = ckpt['state_dict'][name]
            assert (ema - raw).norm() <= 0.05 * raw.norm(), name
    masks = ckpt['gpusq_sparse24']['masks']

    runner = _run(config, method, work, units=3, resume_from=last,
                  scope=scope)
    hook = next(h for h in runner.hooks if type(h).__name__ == 'Sparse24Hook')
    skipped = [d for d in hook.decisions if not d.eligible]
    assert skipped and all(d.reason for d in skipped)
    assert {d.name for d in hook.decisions if d.eligible} == set(layers)
    assert hook.masks.keys() == masks.keys()
    for name, mask in masks.items():
        assert torch.equal(hook.masks[name].cpu(), mask), name
    assert all(v == 0 for v in hook.verify(runner).values())

"""The GPUSQ flow through tools/train.py: phase S (2:4 + KD) then phase Q
(INT8 QAT + KD) on the tiny Swin Mask R-CNN, checkpoint contract, resume."""
import os.path as osp

import pytest
import torch

from gpusq_mm.sparsity import count_violations
from gpusq_mm.utils import load_checkpoint_file
from tests.utils import DEMO_CONFIGS, run_tool

CONFIG = osp.join(DEMO_CONFIGS, 'mask_rcnn_swin_tiny_gpusq.py')


def _opts(epochs: int) -> list:
    # 4 train images, batch 2: 2 iterations per epoch; phase Q from epoch 1
    return ['--cfg-options', f'train_cfg.max_epochs={epochs}',
            f'train_cfg.val_interval={epochs}',
            'default_hooks.checkpoint.interval=1',
            'custom_hooks.1.start_epoch=1', 'custom_hooks.1.calib_batches=1']


def _amax(state_dict: dict) -> dict:
    return {k: v for k, v in state_dict.items() if k.endswith('.amax')}


@pytest.mark.slow
def test_gpusq_two_phases_and_resume(data_cwd, tmp_path):
    work = str(tmp_path / 'work')
    run_tool('train.py', [CONFIG, '--work-dir', work, *_opts(2)],
             cwd=data_cwd)
    s_ckpt = load_checkpoint_file(osp.join(work, 'epoch_1.pth'))
    q_ckpt = load_checkpoint_file(osp.join(work, 'epoch_2.pth'))

    assert s_ckpt['meta']['gpusq']['phase'] == 'S'
    assert 'quant' not in s_ckpt['meta']['gpusq']
    gpusq = q_ckpt['meta']['gpusq']
    assert gpusq['phase'] == 'Q'
    assert gpusq['sparsity']['pattern'] == '2:4'
    layers = gpusq['sparsity']['layers']
    assert len(layers) == 20  # the tiny Swin: 5 blocks x (qkv, proj, fc1, fc2)
    assert not any('patch_embed' in n for n in layers)
    quant = set(gpusq['quant']['layers'])
    assert 'backbone.stages.0.blocks.0.ffn.layers.0.0' in quant  # mmcv FFN
    # the paper's default scope: the backbone only, patch merging dense
    assert gpusq['sparsity']['scope'] == gpusq['quant']['scope'] == \
        'backbone'
    assert all(n.startswith('backbone.') for n in list(layers) + list(quant))
    assert not any('downsample' in n for n in list(layers) + list(quant))
    assert gpusq['quant']['float'] == {}  # calibration reached every layer

    sd = q_ckpt['state_dict']
    for name in layers:
        weight = sd[f'architecture.{name}']
        assert count_violations(weight) == 0, name
        mask = q_ckpt['gpusq_sparse24']['masks'][name]
        assert torch.equal(weight != 0, mask & (weight != 0))
    # phase Q froze the distiller's per-layer feature weights (phi)
    assert not s_ckpt['state_dict']['phi.frozen']
    assert sd['phi.frozen'] and sd['phi.phi'].shape == (2, )
    assert torch.isclose(sd['phi.phi'].sum(), torch.tensor(2.0))
    amax = _amax(sd)
    assert amax and all(k.startswith('architecture.') for k in amax)
    assert all(float(v.min()) > 0 for k, v in amax.items()
               if k.endswith('weight_quantizer.amax'))
    assert set(gpusq['quant']['layers']) == {
        k[len('architecture.'):-len('.input_quantizer.amax')]
        for k in amax if k.endswith('.input_quantizer.amax')}

    # resume inside phase Q: masks and quantizer ranges carry over exactly
    run_tool('train.py', [CONFIG, '--work-dir', work, '--resume',
                          osp.join(work, 'epoch_2.pth'), *_opts(3)],
             cwd=data_cwd)
    r_ckpt = load_checkpoint_file(osp.join(work, 'epoch_3.pth'))
    assert r_ckpt['meta']['iter'] == 6
    for name, mask in q_ckpt['gpusq_sparse24']['masks'].items():
        assert torch.equal(r_ckpt['gpusq_sparse24']['masks'][name], mask)
        assert count_violations(
            r_ckpt['state_dict'][f'architecture.{name}']) == 0
    r_amax = _amax(r_ckpt['state_dict'])
    assert r_amax.keys() == amax.keys()
    for key, value in amax.items():
        assert torch.equal(r_amax[key], value), key

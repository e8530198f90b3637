"""GPUSQ on a CUDA device under mixed precision (AmpOptimWrapper, fp16):
2:4 masks and fake quantization (frozen and learnable ranges) survive
autocast and loss scaling, and resume is exact. Skipped without a GPU (CI);
run on a GPU machine with ``pytest tests/test_engine/test_cuda_amp.py``."""
import math
import os.path as osp

import pytest
import torch

import gpusq_mm  # noqa: F401
from gpusq_mm.quantization import fake_quantize
from gpusq_mm.sparsity import count_violations
from gpusq_mm.utils import load_checkpoint_file
from tests.test_engine.toy import train_toy

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason='needs a CUDA GPU')
AMP = dict(type='AmpOptimWrapper', dtype='float16',
           optimizer=dict(type='SGD', lr=0.1, momentum=0.9))


@pytest.mark.parametrize('learnable', [False, True])
def test_sparse_qat_under_amp_on_cuda(tmp_path, learnable):
    hooks = [dict(type='Sparse24Hook'),
             dict(type='QATHook', start_iter=2, calib_batches=2,
                  learnable_scales=learnable, scale_lr=0.01)]
    full = train_toy(str(tmp_path / 'full'), hooks, max_iters=6,
                     optim_wrapper=AMP)
    model = full.model
    assert next(model.parameters()).is_cuda
    for layer in (model.fc1, model.fc2):
        assert layer.quant_state == 'quant'
        assert count_violations(layer.weight) == 0
        effective = fake_quantize(layer.weight, layer.weight_quantizer.amax)
        assert count_violations(effective) == 0
        assert torch.isfinite(layer.weight_quantizer.amax).all()
        assert 0 < float(layer.input_quantizer.amax) < math.inf
    losses = full.message_hub.get_scalar('train/loss').data[0]
    assert all(math.isfinite(v) for v in losses)
    part = str(tmp_path / 'part')
    train_toy(part, hooks, max_iters=4, optim_wrapper=AMP)
    ckpt = load_checkpoint_file(osp.join(part, 'iter_4.pth'))
    assert 'loss_scaler' in ckpt['optimizer']
    resumed = train_toy(part, hooks, max_iters=6, resume=True,
                        load_from=osp.join(part, 'iter_4.pth'),
                        optim_wrapper=AMP)
    for key, value in ckpt['state_dict'].items():
        if 'amax' in key and not learnable:
            assert torch.equal(resumed.model.state_dict()[key].cpu(), value)
    resumed_losses = resumed.message_hub.get_scalar('train/loss').data[0]
    assert resumed_losses[4:].tolist() == losses[4:].tolist()

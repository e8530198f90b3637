"""QATHook in a real Runner: calibration, fake-quant training composed with
2:4, ranges restored bit-identically on resume, clear errors."""
import os.path as osp

import pytest
import torch
from mmengine.runner import Runner

import gpusq_mm  # noqa: F401
from gpusq_mm.quantization import QuantLinear, fake_quantize
from gpusq_mm.sparsity import count_violations
from gpusq_mm.utils import load_checkpoint_file
from tests.test_engine.toy import runner_cfg, train_toy


@pytest.mark.parametrize('calibrator', ['max', 'entropy'])
def test_qat_with_sparse24_and_resume(tmp_path, calibrator):
    work = str(tmp_path)
    hooks = [dict(type='Sparse24Hook'),
             dict(type='QATHook', start_iter=2, calib_batches=2,
                  calibrator=calibrator)]
    runner = train_toy(work, hooks)
    model = runner.model
    assert isinstance(model.fc1, QuantLinear)
    assert model.fc1.quant_state == 'quant'
    assert not isinstance(model.patch_embed, QuantLinear)
    # pruned weights stay zero and the fake-quantized weight is still 2:4
    wq = fake_quantize(model.fc1.weight, model.fc1.weight_quantizer.amax)
    assert count_violations(model.fc1.weight) == 0
    assert count_violations(wq) == 0
    ckpt = load_checkpoint_file(osp.join(work, 'iter_4.pth'))
    assert ckpt['meta']['gpusq']['phase'] == 'Q'
    assert ckpt['meta']['gpusq']['quant']['calibrator'] == calibrator
    assert ckpt['meta']['gpusq']['quant']['layers'] == ['fc1', 'fc2', 'head']
    s_ckpt = load_checkpoint_file(osp.join(work, 'iter_2.pth'))
    assert 'quant' not in s_ckpt['meta']['gpusq']
    amax = {k: v for k, v in ckpt['state_dict'].items() if 'amax' in k}
    assert len(amax) == 6 and all(float(v.min()) > 0 for v in amax.values())

    resumed = train_toy(work, hooks, max_iters=6, resume=True,
                     load_from=osp.join(work, 'iter_4.pth'))
    state = resumed.model.state_dict()
    for key, value in amax.items():
        assert torch.equal(state[key], value), key  # frozen, not recalibrated
    assert resumed.model.fc1.quant_state == 'quant'


def test_nan_calibration_and_bad_args(tmp_path):
    from gpusq_mm import QATHook
    with pytest.raises(ValueError, match='unknown calibrator'):
        QATHook(calibrator='kl')
    with pytest.raises(ValueError, match='weight_bits'):
        QATHook(weight_bits=2)
    with pytest.raises(ValueError, match='calib_batches'):
        QATHook(calib_batches=0)
    cfg = runner_cfg(str(tmp_path), 2, [dict(type='QATHook')])
    cfg['train_dataloader']['dataset'].x[:] = float('nan')
    runner = Runner(**cfg)
    with pytest.raises(ValueError, match='non-finite'):
        runner.train()


def test_resume_mid_qat_matches_uninterrupted_run(tmp_path):
    hooks = [dict(type='Sparse24Hook'),
             dict(type='QATHook', start_iter=2, calib_batches=2)]
    full = train_toy(str(tmp_path / 'full'), hooks, max_iters=6)
    part = str(tmp_path / 'part')
    train_toy(part, hooks, max_iters=4)
    resumed = train_toy(part, hooks, max_iters=6, resume=True,
                        load_from=osp.join(part, 'iter_4.pth'))
    full_losses = full.message_hub.get_scalar('train/loss').data[0]
    resumed_losses = resumed.message_hub.get_scalar('train/loss').data[0]
    assert len(full_losses) == len(resumed_losses) == 6
    # iterations 5 and 6 (inside QAT, after the resume) are bit-identical
    assert full_losses[4:].tolist() == resumed_losses[4:].tolist()
    for key, value in full.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key


def test_learnable_scales_train_resume_and_mismatch(tmp_path):
    hooks = [dict(type='Sparse24Hook'),
             dict(type='QATHook', start_iter=2, calib_batches=2,
                  learnable_scales=True, scale_lr=0.05)]
    full = train_toy(str(tmp_path / 'full'), hooks, max_iters=6)
    fc1 = full.model.fc1
    assert isinstance(fc1.input_quantizer.amax, torch.nn.Parameter)
    assert isinstance(fc1.weight_quantizer.amax, torch.nn.Parameter)
    group = full.optim_wrapper.optimizer.param_groups[-1]
    assert group['lr'] == 0.05 and group['weight_decay'] == 0.0
    assert {id(p) for p in group['params']} >= {id(fc1.input_quantizer.amax),
                                                  id(fc1.weight_quantizer.amax)}
    assert len(group['params']) == 6  # 3 layers x (input, weight)
    # the ranges moved away from their calibrated values, and the
    # effective weight is still 2:4
    part = str(tmp_path / 'part')
    train_toy(part, hooks, max_iters=4)
    calibrated = load_checkpoint_file(osp.join(part, 'iter_4.pth'))
    assert not torch.equal(
        calibrated['state_dict']['fc1.weight_quantizer.amax'],
        fc1.weight_quantizer.amax.detach())
    assert calibrated['gpusq_qat']['learnable_scales'] is True
    assert calibrated['meta']['gpusq']['quant']['scales'] == 'learnable'
    assert count_violations(
        fake_quantize(fc1.weight, fc1.weight_quantizer.amax)) == 0
    # resume mid-QAT: the optimizer state of the ranges loads and the run
    # continues exactly as the uninterrupted one
    resumed = train_toy(part, hooks, max_iters=6, resume=True,
                        load_from=osp.join(part, 'iter_4.pth'))
    full_losses = full.message_hub.get_scalar('train/loss').data[0]
    resumed_losses = resumed.message_hub.get_scalar('train/loss').data[0]
    assert full_losses[4:].tolist() == resumed_losses[4:].tolist()
    for key, value in full.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key
    frozen = [dict(type='Sparse24Hook'),
              dict(type='QATHook', start_iter=2, calib_batches=2)]
    with pytest.raises(ValueError, match='learnable_scales=True'):
        train_toy(part, frozen, max_iters=6, resume=True,
                  load_from=osp.join(part, 'iter_4.pth'))
    # calibration is not repeated on resume: another calibrator (or weight
    # width) in the config is refused, naming both values
    for option, value, saved in (('calibrator', 'entropy', "'max'"),
                                 ('weight_bits', 4, '8')):
        other = [dict(type='Sparse24Hook'),
                 dict(type='QATHook', start_iter=2, calib_batches=2,
                      learnable_scales=True, scale_lr=0.05,
                      **{option: value})]
        with pytest.raises(ValueError, match=(
                f'QATHook: the checkpoint was written with {option}='
                f'{saved} but the config says {option}={value!r}')):
            train_toy(part, other, max_iters=6, resume=True,
                      load_from=osp.join(part, 'iter_4.pth'))


def test_quant_attention_option_is_validated():
    from gpusq_mm import QATHook
    with pytest.raises(ValueError, match="'include' and 'exclude'"):
        QATHook(quant_attention=dict(exclud=['x']))
    with pytest.raises(ValueError, match='bool or a dict'):
        QATHook(quant_attention='yes')
    with pytest.raises(ValueError, match='scale_lr'):
        QATHook(learnable_scales=True, scale_lr=0)

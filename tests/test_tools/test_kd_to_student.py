"""Distiller checkpoint -> converter -> plain task config, evaluated by
tools/test.py; a plain task checkpoint initialises the distiller's student."""
import os.path as osp

import pytest
import torch

from gpusq_mm.utils import load_checkpoint_file
from tests.utils import DEMO_CONFIGS, run_tool


@pytest.mark.slow
def test_round_trip(data_cwd, tmp_path):
    work = str(tmp_path / 'gpusq')
    run_tool('train.py', [
        osp.join(DEMO_CONFIGS, 'deit_tiny_gpusq.py'), '--work-dir', work,
        '--cfg-options', 'train_cfg.max_epochs=2',
        'train_cfg.val_interval=2', 'custom_hooks.1.start_epoch=1',
        'custom_hooks.1.calib_batches=1'], cwd=data_cwd)
    src = osp.join(work, 'epoch_2.pth')
    ckpt = load_checkpoint_file(src)
    # a phase-Q checkpoint carries the sparse stage-2 teacher (M_SF); the
    # converter keeps the student only
    assert any(k.startswith('teacher.') for k in ckpt['state_dict'])
    dst = str(tmp_path / 'student.pth')
    run_tool('model_converters/kd_to_student.py', [src, dst], cwd=data_cwd)
    plain = load_checkpoint_file(dst)
    assert set(plain['state_dict']) == {
        k[len('architecture.'):] for k in ckpt['state_dict']
        if k.startswith('architecture.')}
    assert plain['meta']['gpusq']['phase'] == 'Q'
    for k, v in plain['state_dict'].items():
        assert torch.equal(v, ckpt['state_dict']['architecture.' + k])

    # the plain task config evaluates it as trained (fake-quant restored)
    out = run_tool('test.py', [osp.join(DEMO_CONFIGS, 'deit_tiny_dense.py'),
                               dst, '--work-dir', str(tmp_path / 'test')],
                   cwd=data_cwd)
    plain_acc = _top1(out.stdout + out.stderr)
    out = run_tool('test.py', [osp.join(DEMO_CONFIGS, 'deit_tiny_gpusq.py'),
                               src, '--work-dir', str(tmp_path / 'test2')],
                   cwd=data_cwd)
    assert plain_acc == _top1(out.stdout + out.stderr)

    # load_from= a plain task checkpoint initialises the student
    run_tool('train.py', [
        osp.join(DEMO_CONFIGS, 'deit_tiny_gpusq.py'), '--work-dir',
        str(tmp_path / 'again'), '--cfg-options', f'load_from={dst}',
        'train_cfg.max_epochs=1', 'custom_hooks=[]'], cwd=data_cwd)
    bad = run_tool('model_converters/kd_to_student.py', [dst, dst],
                   cwd=data_cwd, check=False)
    assert bad.returncode != 0 and 'refusing to overwrite' in bad.stderr


def _top1(text: str) -> float:
    import re
    return float(re.findall(r'accuracy/top1: ([0-9.]+)', text)[-1])

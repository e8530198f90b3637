"""Phase starts given as fractions of the schedule, in real Runners."""
import os.path as osp

import pytest

import gpusq_mm  # noqa: F401
from gpusq_mm.engine.hooks.phase_start import PhaseStart
from gpusq_mm.utils import load_checkpoint_file
from tests.test_engine.toy import train_toy


def _phase(work: str, name: str) -> str:
    return load_checkpoint_file(osp.join(work, name))['meta']['gpusq'][
        'phase']


def test_fraction_of_iterations(tmp_path):
    # 8 iterations, QAT from 0.5 -> iteration 4; checkpoints every 2
    work = str(tmp_path)
    hooks = [dict(type='Sparse24Hook'),
             dict(type='QATHook', start_iter=0.5, calib_batches=1)]
    runner = train_toy(work, hooks, max_iters=8)
    assert runner.model.fc1.quant_state == 'quant'
    assert [_phase(work, f'iter_{i}.pth') for i in (2, 4, 6, 8)] == \
        ['S', 'S', 'Q', 'Q']


def test_fraction_of_epochs(tmp_path):
    # 4 epochs of 4 iterations, QAT from 0.5 -> epoch 2 (iteration 8)
    work = str(tmp_path)
    hooks = [dict(type='Sparse24Hook'),
             dict(type='QATHook', start_epoch=0.5, calib_batches=1)]
    train_toy(work, hooks, train_cfg=dict(by_epoch=True, max_epochs=4),
              default_hooks=dict(checkpoint=dict(type='CheckpointHook',
                                                 interval=1)))
    assert [_phase(work, f'epoch_{i}.pth') for i in (1, 2, 3, 4)] == \
        ['S', 'S', 'Q', 'Q']


@pytest.mark.parametrize('value', [1.0, -0.1, 1.5, -1, True, '0.5'])
def test_bad_start_is_named(value):
    with pytest.raises(ValueError, match=r'QATHook: start_iter must be .*'
                       r'fraction'):
        PhaseStart('QATHook', value, None)


def test_zero_fraction_starts_at_once_and_ints_are_kept():
    assert PhaseStart('S', 0.0, None).start_iter == 0.0
    start = PhaseStart('S', None, 3)
    assert start.start_epoch == 3 and isinstance(start.start_epoch, int)

"""Hook configs users get wrong: each fails at build or at train start with
an error that names the key and the fix; checkpoints in the work dir stay
untouched."""
import os.path as osp

import pytest

from tests.bad_inputs import fails, toy_runner

HOOK_CASES = {
    'hook type misspelled': (dict(type='Sparse24hook'), KeyError,
                             ['Sparse24hook', 'registry']),
    'qat hook type misspelled': (dict(type='QATHoook'), KeyError,
                                 ['QATHoook', 'registry']),
    'sparse hook key misspelled': (dict(type='Sparse24Hook', methd='x'),
                                   TypeError, ['methd']),
    'qat hook key misspelled': (dict(type='QATHook', calibrater='max'),
                                TypeError, ['calibrater']),
    'unknown 2:4 method': (dict(type='Sparse24Hook', method='magnitud'),
                           ValueError, ['unknown 2:4 method', 'magnitude']),
    'unknown calibrator': (dict(type='QATHook', calibrator='kl'),
                           ValueError, ['unknown calibrator', 'entropy']),
    'weight bits': (dict(type='QATHook', weight_bits=16), ValueError,
                    ['weight_bits', '8 or 4']),
    'calib batches': (dict(type='QATHook', calib_batches=0), ValueError,
                      ['calib_batches', 'positive']),
    'percentile': (dict(type='QATHook', calibrator='percentile',
                        percentile=0), ValueError, ['percentile', '(0, 100]']),
    'start iter and epoch': (dict(type='QATHook', start_iter=1,
                                  start_epoch=1), ValueError, ['not both']),
    'negative start': (dict(type='Sparse24Hook', start_iter=-1), ValueError,
                       ['start_iter', 'non-negative']),
}


@pytest.mark.parametrize('case', list(HOOK_CASES))
def test_bad_hook_config(work, case):
    hook, exc, words = HOOK_CASES[case]
    with fails(work, exc, *words):
        toy_runner(work, [hook])


TRAIN_CASES = {
    'qat start past the schedule': (
        dict(type='QATHook', start_iter=10), ['start_iter=10',
                                              'past the schedule',
                                              'max_iters=4']),
    'sparse start past the schedule': (
        dict(type='Sparse24Hook', start_iter=4), ['start_iter=4',
                                                  'past the schedule']),
    '2:4 include matches nothing': (
        dict(type='Sparse24Hook', include=[r'^blocks\.']),
        ['blocks', 'match no', 'module names']),
    'qat include matches nothing': (
        dict(type='QATHook', include=['mlp.fc9']),
        ['mlp.fc9', 'match no', 'Linear, Conv2d or MultiheadAttention']),
}


@pytest.mark.parametrize('case', list(TRAIN_CASES))
def test_bad_hook_config_at_train_start(work, case):
    hook, words = TRAIN_CASES[case]
    runner = toy_runner(work, [hook])
    with fails(work, ValueError, *words):
        runner.train()
    assert not osp.exists(osp.join(work, 'iter_1.pth'))


def test_qat_start_epoch_past_the_schedule(work):
    runner = toy_runner(work, [dict(type='QATHook', start_epoch=3)],
                         train_cfg=dict(by_epoch=True, max_epochs=2))
    with fails(work, ValueError, 'start_epoch=3', 'max_epochs=2'):
        runner.train()

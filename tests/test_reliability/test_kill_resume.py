"""SIGKILL a tiny Mask R-CNN Swin GPUSQ run inside phase S, inside QAT
calibration and inside phase Q; ``--resume`` each time; the resumed chain
must equal the uninterrupted run at every iteration: masks, quantizer
ranges, weights (1e-6) and the loss of every iteration (exactly)."""
import json
import os
import os.path as osp
import random
import signal

import pytest
import torch

from gpusq_mm.utils import load_checkpoint_file
from tests.test_reliability.common import masks_and_amax, write_config
from tests.test_reliability.probe_hooks import KILL_ENV
from tests.utils import run_tool

MAX_ITERS, QAT_START = 6, 3


def _train(cfg: str, work: str, cwd: str, kill: str = '',
           resume: bool = False):
    os.environ[KILL_ENV] = kill
    try:
        return run_tool('train.py', [cfg, '--work-dir', work] +
                        (['--resume'] if resume else []), cwd=cwd,
                        check=not kill, timeout=600)
    finally:
        os.environ.pop(KILL_ENV)


def _losses(work: str) -> dict:
    """iteration -> loss; a resumed run re-appends iterations that the
    killed run logged after its last checkpoint, the last entry wins."""
    with open(osp.join(work, 'losses.jsonl')) as f:
        return {r['iter']: r['loss'] for r in map(json.loads, f)}


def _assert_same(ref_path: str, got_path: str) -> None:
    ref, got = load_checkpoint_file(ref_path), load_checkpoint_file(got_path)
    assert ref['meta']['iter'] == got['meta']['iter']
    r, g = masks_and_amax(ref), masks_and_amax(got)
    for kind in ('masks', 'amax'):
        assert r[kind].keys() == g[kind].keys(), kind
        for name, value in r[kind].items():
            assert torch.equal(value, g[kind][name]), (kind, name, got_path)
    assert ref['state_dict'].keys() == got['state_dict'].keys()
    for name, value in ref['state_dict'].items():
        torch.testing.assert_close(got['state_dict'][name], value, rtol=0,
                                   atol=1e-6, msg=f'{name} in {got_path}')
    assert ref.get('gpusq_qat') == got.get('gpusq_qat')


@pytest.mark.slow
def test_kill_in_s_calibration_and_q_then_resume(data_cwd, tmp_path):
    seed = int(os.environ.get('GPUSQ_TEST_SEED', random.randrange(10**6)))
    rng = random.Random(seed)
    kill_s = rng.randrange(1, QAT_START)               # inside phase S
    kill_q = rng.randrange(QAT_START + 1, MAX_ITERS)   # inside phase Q
    info = f'GPUSQ_TEST_SEED={seed}: kills at iter {kill_s}, calib, {kill_q}'
    cfg = write_config(str(tmp_path), MAX_ITERS, QAT_START)
    ref, chain = str(tmp_path / 'ref'), str(tmp_path / 'chain')

    _train(cfg, ref, data_cwd)
    steps = [(f'iter:{kill_s}', False, kill_s), ('calib', True, QAT_START),
             (f'iter:{kill_q}', True, kill_q)]
    for kill, resume, last_ckpt in steps:
        proc = _train(cfg, chain, data_cwd, kill, resume)
        assert proc.returncode == -signal.SIGKILL, (info, proc.stderr[-3000:])
        assert _last_iter(chain) == last_ckpt, info
        assert not osp.exists(osp.join(chain, f'iter_{last_ckpt + 1}.pth'))
        if kill == 'calib':  # killed before phase Q's first step
            assert 'fake-quantized' not in proc.stdout + proc.stderr
    proc = _train(cfg, chain, data_cwd, resume=True)
    assert 'Advance dataloader' in proc.stdout + proc.stderr

    ref_loss, chain_loss = _losses(ref), _losses(chain)
    assert sorted(ref_loss) == list(range(1, MAX_ITERS + 1))
    # the first iteration after each resume, then all of them
    for it in (kill_s + 1, QAT_START + 1, kill_q + 1):
        assert chain_loss[it] == ref_loss[it], (info, it)
    assert chain_loss == ref_loss, info
    for it in range(1, MAX_ITERS + 1):
        _assert_same(osp.join(ref, f'iter_{it}.pth'),
                     osp.join(chain, f'iter_{it}.pth'))
    last = osp.join(chain, f'iter_{MAX_ITERS}.pth')
    q = masks_and_amax(load_checkpoint_file(last))
    assert q['masks'] and len(q['amax']) > 40, info


def _last_iter(work: str) -> int:
    with open(osp.join(work, 'last_checkpoint')) as f:
        return load_checkpoint_file(f.read().strip())['meta']['iter']

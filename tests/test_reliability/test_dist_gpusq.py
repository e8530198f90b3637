"""tools/dist_train.sh, 2 processes (gloo, CPU), tiny Mask R-CNN Swin GPUSQ:
at every checkpoint both ranks hold identical masks and quantizer ranges
(equal to the saved ones), and calibration ranges are the max over ranks
even where one rank's own maximum was smaller."""
import json
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch

from gpusq_mm.utils import load_checkpoint_file
from tests.test_reliability.common import masks_and_amax, write_config
from tests.test_reliability.probe_hooks import tensor_digest
from tests.test_tools.test_dist_train import _free_port
from tests.utils import REPO

MAX_ITERS, QAT_START = 4, 2


def _dist_train(cfg: str, work: str, cwd: str, *args: str) -> str:
    env = dict(os.environ, OMP_NUM_THREADS='1', PORT=str(_free_port()),
               PATH=osp.dirname(sys.executable) + os.pathsep +
               os.environ['PATH'])
    proc = subprocess.run(
        ['bash', osp.join(REPO, 'tools', 'dist_train.sh'), cfg, '2',
         '--work-dir', work, *args], cwd=cwd, env=env, capture_output=True,
        text=True, timeout=900)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-5000:]
    return out


def _read_jsonl(path: str) -> list:
    with open(path) as f:
        return [json.loads(line) for line in f]


@pytest.mark.slow
def test_dist_masks_scales_and_calibration_reduce(data_cwd, tmp_path):
    cfg = write_config(str(tmp_path), MAX_ITERS, QAT_START,
                       extra_hooks=('DigestHook', 'CalibProbeHook'))
    work = str(tmp_path / 'work')
    out = _dist_train(cfg, work, data_cwd)
    assert 'Distributed training: True' in out

    ranks = [_read_jsonl(osp.join(work, f'digests_rank{r}.jsonl'))
             for r in (0, 1)]
    assert [r['iter'] for r in ranks[0]] == list(range(1, MAX_ITERS + 1))
    for rec0, rec1 in zip(*ranks):
        assert rec0['all'] == rec1['all'] and len(rec0['all']) == 2
        assert rec0['all'][0] == rec0['all'][1], rec0['iter']  # ranks agree
        saved = masks_and_amax(load_checkpoint_file(
            osp.join(work, f'iter_{rec0["iter"]}.pth')))
        saved['amax'] = {k[len('architecture.'):]: v
                         for k, v in saved['amax'].items()}
        assert {k: tensor_digest(v) for k, v in saved.items()} == \
            rec0['own'], rec0['iter']
        assert saved['masks'], 'phase S keeps masks from iteration 1'
        assert bool(saved['amax']) == (rec0['iter'] > QAT_START)

    local = [json.load(open(osp.join(work, f'calib_local_rank{r}.json')))
             for r in (0, 1)]
    # scope all: every Linear/Conv2d but patch embedding and patch merging
    assert local[0].keys() == local[1].keys() and len(local[0]) >= 40
    final = load_checkpoint_file(osp.join(work, f'iter_{MAX_ITERS}.pth'))
    amax = final['state_dict']
    differing = 0
    for name in local[0]:
        got = float(amax[f'architecture.{name}.input_quantizer.amax'])
        assert got == max(local[0][name], local[1][name]), name
        differing += local[0][name] != local[1][name]
    # the ranks calibrated on different images: many layers had a rank
    # whose own maximum was below the final (global) one
    assert differing > len(local[0]) // 2


@pytest.mark.slow
def test_dist_resume_is_exact(data_cwd, tmp_path):
    """2 ranks, resumed in phase S from iter_1 (each rank gets its own
    generator state back): iteration 2 (phase S) to 3 (phase Q, after
    calibration) equal the uninterrupted run."""
    cfg = write_config(str(tmp_path), 3, QAT_START, extra_hooks=())
    ref, cut = str(tmp_path / 'ref'), str(tmp_path / 'cut')
    _dist_train(cfg, ref, data_cwd)
    out = _dist_train(cfg, cut, data_cwd, '--resume',
                      osp.join(ref, 'iter_1.pth'))
    assert 'resumed' in out.lower()
    saved = load_checkpoint_file(osp.join(ref, 'iter_1.pth'))
    assert len(saved['gpusq_rng']['ranks']) == 2
    for it in (2, 3):
        a = load_checkpoint_file(osp.join(ref, f'iter_{it}.pth'))
        b = load_checkpoint_file(osp.join(cut, f'iter_{it}.pth'))
        for kind, value in masks_and_amax(a).items():
            other = masks_and_amax(b)[kind]
            assert value.keys() == other.keys()
            assert all(torch.equal(v, other[k]) for k, v in value.items())
        for key, value in a['state_dict'].items():
            torch.testing.assert_close(b['state_dict'][key], value, rtol=0,
                                       atol=1e-6, msg=key)

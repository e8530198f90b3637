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

from gpusq_mm.utils import load_checkpoint_file
from tests.test_reliability.common import masks_and_amax, write_config
from tests.test_reliability.probe_hooks import tensor_digest
from tests.test_tools.test_dist_train import _free_port
from tests.utils import REPO

MAX_ITERS, QAT_START = 4, 2


def _read_jsonl(path: str) -> list:
    with open(path) as f:
        return [json.loads(line) for line in f]


@pytest.mark.slow
def test_dist_masks_scales_and_calibration_reduce(data_cwd, tmp_path):
    cfg = write_config(str(tmp_path), MAX_ITERS, QAT_START,
                       extra_hooks=('DigestHook', 'CalibProbeHook'))
    work = str(tmp_path / 'work')
    env = dict(os.environ, OMP_NUM_THREADS='1', PORT=str(_free_port()),
               PATH=osp.dirname(sys.executable) + os.pathsep +
               os.environ['PATH'])
    proc = subprocess.run(
        ['bash', osp.join(REPO, 'tools', 'dist_train.sh'), cfg, '2',
         '--work-dir', work], cwd=data_cwd, env=env, capture_output=True,
        text=True, timeout=900)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-5000:]
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
    assert local[0].keys() == local[1].keys() and len(local[0]) > 40
    final = load_checkpoint_file(osp.join(work, f'iter_{MAX_ITERS}.pth'))
    amax = final['state_dict']
    differing = 0
    for name in local[0]:
        got = float(amax[f'architecture.{name}.input_amax'])
        assert got == max(local[0][name], local[1][name]), name
        differing += local[0][name] != local[1][name]
    # the ranks calibrated on different images: many layers had a rank
    # whose own maximum was below the final (global) one
    assert differing > len(local[0]) // 2

"""Worker for test_dist_masks.py, started by torchrun (2 processes, gloo).

Rank 1 perturbs its weights just before masks are computed, so masks and
calibration ranges computed locally would differ; Sparse24Hook must
broadcast rank 0's masks and QATHook must max-reduce the ranges. With a
second argument ``learnable`` the ranges are then trained for two more
iterations on different data per rank (their gradients must be averaged).
Each rank writes masks and ranges to ``<work_dir>/state_rank<r>.pth``.
"""
import os
import os.path as osp
import sys

import torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.runner import Runner

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(
    __file__)))))

import gpusq_mm  # noqa: E402,F401
from gpusq_mm.utils import get_student  # noqa: E402
from gpusq_mm.utils.dist import prepare_cpu_distributed  # noqa: E402
from gpusq_mm.utils.dist import shutdown_distributed
from tests.test_engine.toy import runner_cfg  # noqa: E402


class PerturbOnRank1(Hook):
    priority = 'VERY_HIGH'  # before Sparse24Hook computes masks

    def before_train(self, runner) -> None:
        if get_rank() == 1:
            with torch.no_grad():
                for p in get_student(runner.model).parameters():
                    p.mul_(torch.rand_like(p))


class DumpMasks(Hook):

    def after_train(self, runner) -> None:
        hook = next(h for h in runner.hooks
                    if type(h).__name__ == 'Sparse24Hook')
        student = get_student(runner.model)
        torch.save(dict(masks={k: v.cpu() for k, v in hook.masks.items()},
                        amax={k: v.cpu() for k, v in
                              student.state_dict().items() if 'amax' in k}),
                   osp.join(runner.work_dir, f'state_rank{get_rank()}.pth'))


def main() -> None:
    from mmengine.config import Config
    work_dir = sys.argv[1]
    learnable = sys.argv[2:] == ['learnable']
    # a histogram calibrator: per-rank histograms are merged first
    calibrator = 'entropy' if sys.argv[2:] == ['entropy'] else 'max'
    cfg = Config(dict(launcher='pytorch'))
    prepare_cpu_distributed(cfg)
    runner = Runner(**runner_cfg(
        work_dir, 4 if learnable else 2,
        [PerturbOnRank1(), dict(type='Sparse24Hook'),
         dict(type='QATHook', start_iter=1, calib_batches=1,
              calibrator=calibrator, learnable_scales=learnable,
              scale_lr=0.05),
         DumpMasks()],
        launcher='pytorch',
        cfg=dict(model_wrapper_cfg=cfg.model_wrapper_cfg)))
    runner.train()
    shutdown_distributed()


if __name__ == '__main__':
    os.environ.setdefault('OMP_NUM_THREADS', '1')
    main()

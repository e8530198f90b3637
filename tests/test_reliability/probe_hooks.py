"""Test-only hooks imported by the reliability tests' configs.

``KillSwitchHook`` SIGKILLs its own process (no cleanup, no flush) at the
point named by the environment variable ``GPUSQ_TEST_KILL``:

- ``iter:N``: at the start of iteration N (``runner.iter == N``, before the
  batch is used);
- ``calib``: inside QAT calibration, right after the student's first
  eval-mode forward (calibration runs the student in eval mode).

``LossRecorderHook`` appends ``{"iter": k, "loss": ...}`` (the raw loss of
iteration k, 1-based) to ``<work_dir>/losses.jsonl``.
"""
import json
import os
import os.path as osp
import signal

from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from gpusq_mm.utils import get_student

KILL_ENV = 'GPUSQ_TEST_KILL'


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


@HOOKS.register_module(force=True)
class KillSwitchHook(Hook):
    priority = 'HIGHEST'

    def __init__(self) -> None:
        self.spec = os.environ.get(KILL_ENV, '')

    def before_run(self, runner) -> None:
        if self.spec == 'calib':
            def kill_in_eval(module, args, output):
                if not module.training:
                    _die()
            get_student(runner.model).register_forward_hook(kill_in_eval)

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        if self.spec.startswith('iter:') and \
                runner.iter == int(self.spec[len('iter:'):]):
            _die()


@HOOKS.register_module(force=True)
class LossRecorderHook(Hook):
    priority = 'LOWEST'

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        with open(osp.join(runner.work_dir, 'losses.jsonl'), 'a') as f:
            f.write(json.dumps(dict(iter=runner.iter + 1,
                                    loss=float(outputs['loss']))) + '\n')

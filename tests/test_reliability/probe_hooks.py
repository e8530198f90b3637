"""Test-only hooks imported by the reliability tests' configs.

``KillSwitchHook`` SIGKILLs its own process (no cleanup, no flush) at the
point named by the environment variable ``GPUSQ_TEST_KILL``:

- ``iter:N``: at the start of iteration N (``runner.iter == N``, before the
  batch is used);
- ``calib``: inside QAT calibration, right after the student's first
  eval-mode forward (calibration runs the student in eval mode).

``LossRecorderHook`` appends ``{"iter": k, "loss": ...}`` (the raw loss of
iteration k, 1-based) to ``<work_dir>/losses.jsonl``.

``DigestHook`` and ``CalibProbeHook`` serve the 2-process DDP test.
"""
import hashlib
import json
import os
import os.path as osp
import signal

from mmengine.dist import all_gather_object, get_rank
from mmengine.hooks import Hook
from mmengine.registry import HOOKS
from torch import nn

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


def tensor_digest(tensors: dict) -> str:
    """sha256 over names, dtypes, shapes and bytes of a dict of tensors."""
    sha = hashlib.sha256()
    for name in sorted(tensors):
        value = tensors[name].detach().cpu().contiguous()
        sha.update(f'{name}|{value.dtype}|{tuple(value.shape)}|'.encode())
        sha.update(value.numpy().tobytes())
    return sha.hexdigest()


def student_state(runner) -> dict:
    """The Sparse24Hook masks and the student's quantizer ranges."""
    hook = next((h for h in runner.hooks
                 if type(h).__name__ == 'Sparse24Hook'), None)
    masks = dict(hook.masks) if hook is not None else {}
    amax = {k: v for k, v in get_student(runner.model).state_dict().items()
            if k.endswith(('input_quantizer.amax', 'weight_quantizer.amax'))}
    return dict(masks=masks, amax=amax)


@HOOKS.register_module(force=True)
class DigestHook(Hook):
    """After every iteration (the test config checkpoints every
    iteration), all-gather digests of masks and quantizer ranges and write
    them to ``<work_dir>/digests_rank<r>.jsonl``."""
    priority = 'LOWEST'  # after CheckpointHook wrote the checkpoint

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        state = student_state(runner)
        own = {k: tensor_digest(v) for k, v in state.items()}
        record = dict(iter=runner.iter + 1, own=own,
                      all=all_gather_object(own), rank=get_rank())
        path = osp.join(runner.work_dir, f'digests_rank{get_rank()}.jsonl')
        with open(path, 'a') as f:
            f.write(json.dumps(record) + '\n')


@HOOKS.register_module(force=True)
class CalibProbeHook(Hook):
    """Record this rank's own max |input| of every layer while the layers
    are in calibration state (before the cross-rank reduction), write them
    to ``<work_dir>/calib_local_rank<r>.json`` after training."""

    def __init__(self) -> None:
        self.local = {}

    def before_run(self, runner) -> None:
        student = get_student(runner.model)
        for name, module in student.named_modules():
            if isinstance(module, (nn.Linear, nn.Conv2d)):
                module.register_forward_pre_hook(self._recorder(name))

    def _recorder(self, name: str):
        def record(module, args):
            if getattr(module, 'quant_state', None) == 'calib':
                value = float(args[0].detach().abs().amax().float())
                self.local[name] = max(self.local.get(name, 0.0), value)
        return record

    def after_train(self, runner) -> None:
        path = osp.join(runner.work_dir, f'calib_local_rank{get_rank()}.json')
        with open(path, 'w') as f:
            json.dump(self.local, f)

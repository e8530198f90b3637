"""Helpers shared by the tests."""
import os
import os.path as osp
import subprocess
import sys
from typing import List, Optional

import pytest

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEMO_CONFIGS = osp.join(REPO, 'configs', 'gpusq', 'demo')


def run_tool(script: str, args: List[str], cwd: str,
             timeout: int = 900, check: bool = True
             ) -> subprocess.CompletedProcess:
    """Run ``tools/<script>`` with this interpreter; fail with its output."""
    env = dict(os.environ, PYTHONPATH=REPO, OMP_NUM_THREADS='2')
    proc = subprocess.run(
        [sys.executable, osp.join(REPO, 'tools', script), *args], cwd=cwd,
        env=env, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        pytest.fail(f'{script} {" ".join(args)} exited with '
                    f'{proc.returncode}\n--- stdout\n{proc.stdout[-4000:]}'
                    f'\n--- stderr\n{proc.stderr[-6000:]}')
    return proc


def load_tool(script: str):
    """Import ``tools/<script>`` as a module (to call its ``main()``
    in-process, e.g. with monkeypatched steps)."""
    import importlib.util
    name = osp.splitext(osp.basename(script))[0] + '_tool'
    spec = importlib.util.spec_from_file_location(
        name, osp.join(REPO, 'tools', script))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def train_demo(config: str, work_dir: str, hooks: list, units: int,
               resume_from: Optional[str] = None, seed: int = 0,
               options: Optional[dict] = None):
    """Train a ``configs/gpusq/demo`` config in-process with ``hooks``.

    ``units`` is epochs (2 iterations each on the test data) or, for
    iteration-based configs, pairs of iterations; a checkpoint is written
    at every unit. Seeded (``seed``, default 0), so two calls train alike.
    ``options`` are merged into the config like ``--cfg-options``.
    Returns the Runner.
    """
    from mmengine.config import Config
    from mmengine.runner import Runner
    cfg = Config.fromfile(osp.join(DEMO_CONFIGS, config))
    cfg.work_dir = work_dir
    cfg.custom_hooks = hooks
    if cfg.train_cfg.get('type') == 'IterBasedTrainLoop':
        cfg.train_cfg.max_iters = 2 * units
        cfg.default_hooks.checkpoint.interval = 2
    else:
        cfg.train_cfg.max_epochs = units
        cfg.default_hooks.checkpoint.interval = 1
    cfg.train_cfg.val_interval = 1000
    cfg.randomness = dict(seed=seed)
    if options:
        cfg.merge_from_dict(options)
    if resume_from:
        cfg.resume, cfg.load_from = True, resume_from
    runner = Runner.from_cfg(cfg)
    runner.train()
    return runner

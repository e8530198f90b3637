"""Helpers shared by the tests."""
import os
import os.path as osp
import subprocess
import sys
from typing import List

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

"""Run the project's CLI tools as subprocesses with a progress bar."""
import os
import os.path as osp
import subprocess
import sys
import time
from typing import Callable, List, Optional

from gpusq_mm.resources import repo_root

#: The folder with ``configs/`` and ``tools/`` (checkout or installed copy).
REPO = repo_root()


class ToolError(RuntimeError):
    """A tool exited with a non-zero status (the message names its log)."""


def run_tool(script: str, args: List[str], log: str, desc: str,
             progress: Optional[Callable[[str], Optional[float]]] = None
             ) -> str:
    """Run ``tools/<script> args`` with this interpreter, the repository on
    ``PYTHONPATH``; stream its output to ``log`` and drive a tqdm bar from
    ``progress(line) -> fraction done`` (or show elapsed time only).

    Returns:
        str: The tool's whole output (stdout and stderr).

    Raises:
        ToolError: The tool failed.
    """
    from tqdm import tqdm
    cmd = [sys.executable, osp.join(REPO, 'tools', script), *args]
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep +
               os.environ.get('PYTHONPATH', ''), PYTHONUNBUFFERED='1')
    os.makedirs(osp.dirname(log), exist_ok=True)
    lines = []
    start = time.time()
    with open(log, 'w') as f, tqdm(total=1000, desc=desc, leave=True,
                                   bar_format='{desc}: {percentage:3.0f}%|'
                                   '{bar:30}| {elapsed}<{remaining}') as bar:
        f.write('$ ' + ' '.join(cmd) + '\n')
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, env=env)
        for line in proc.stdout:
            f.write(line)
            lines.append(line)
            done = progress(line) if progress else None
            if done is not None:
                bar.n = min(int(done * 1000), 1000)
                bar.refresh()
        code = proc.wait()
        if code == 0:
            bar.n = 1000
            bar.refresh()
    if code:
        raise ToolError(f'{script} failed (exit {code}) after '
                        f'{time.time() - start:.0f} s; see {log}:\n'
                        + ''.join(lines[-15:]))
    return ''.join(lines)

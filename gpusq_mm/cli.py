"""Console scripts of an installed gpusq_mm (``gpusq-train``,
``gpusq-test``, ``gpusq-deploy``, ``gpusq-demo``, ``gpusq-demo-data``): each
runs its tool in ``tools/`` (the checkout's, or the package's copy) with the
same command line, so ``gpusq-train CONFIG ...`` is ``python
tools/train.py CONFIG ...`` and ``gpusq-demo-data`` is ``python
tools/misc/make_demo_data.py``. ``python -m gpusq_mm.cli train ...`` does
the same."""
import os.path as osp
import runpy
import sys
from typing import List, Optional

from .resources import resource_dir

#: Console-script name (``gpusq-<name>``) -> script under ``tools/``.
TOOLS = {'train': 'train.py', 'test': 'test.py', 'deploy': 'deploy.py',
         'demo': 'demo.py', 'demo-data': 'misc/make_demo_data.py'}


def run(tool: str, argv: Optional[List[str]] = None) -> None:
    """Run ``tools/<tool>.py`` as ``__main__`` with ``argv``."""
    script = osp.join(resource_dir('tools'), TOOLS[tool])
    sys.argv = [script, *(sys.argv[1:] if argv is None else argv)]
    runpy.run_path(script, run_name='__main__')


def train() -> None:
    run('train')


def test() -> None:
    run('test')


def deploy() -> None:
    run('deploy')


def demo() -> None:
    run('demo')


def demo_data() -> None:
    run('demo-data')


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in TOOLS:
        sys.exit(f'usage: python -m gpusq_mm.cli {{{",".join(TOOLS)}}} ...')
    run(sys.argv[1], sys.argv[2:])


if __name__ == '__main__':
    main()

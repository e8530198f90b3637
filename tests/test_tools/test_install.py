"""gpusq_mm installed as a package (``pip install .``), not used from the
checkout: the wheel ships the configs and tools (``gpusq_mm/.mim``), the
console scripts find them, and from an empty directory ``gpusq-demo-data``
writes the demo data and ``gpusq-train`` trains a shipped demo config, by
its short name."""
import glob
import json
import os
import os.path as osp
import shutil
import subprocess
import sys

import pytest
import torch

from gpusq_mm.utils import load_checkpoint_file
from tests.utils import REPO


def _run(cmd, cwd, env, timeout=600):
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)
    assert proc.returncode == 0, (cmd, proc.stdout[-3000:],
                                  proc.stderr[-5000:])
    return proc


@pytest.fixture(scope='module')
def installed(tmp_path_factory) -> str:
    """The wheel of this checkout, installed into its own folder (the
    OpenMMLab stack comes from this environment)."""
    tmp = tmp_path_factory.mktemp('install')
    # build from a copy: the build writes build/ and gpusq_mm/.mim
    src = str(tmp / 'src')
    shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(
        '.git', '.venv', 'work_dirs', 'data', 'build', '.mim',
        '__pycache__', '*.egg-info'))
    env = dict(os.environ)
    env.pop('PYTHONPATH', None)
    pip = [sys.executable, '-m', 'pip', '--disable-pip-version-check']
    _run([*pip, 'wheel', '-q', '--no-deps', '--no-build-isolation', '-w',
          str(tmp / 'wheel'), src], cwd=str(tmp), env=env)
    wheel, = glob.glob(str(tmp / 'wheel' / 'gpusq_mm-*.whl'))
    target = str(tmp / 'site')
    _run([*pip, 'install', '-q', '--no-deps', '--no-index', '--target',
          target, wheel], cwd=str(tmp), env=env)
    return target


def _env(target: str) -> dict:
    # the installed copy first, and not the checkout
    return dict(os.environ, PYTHONPATH=target, OMP_NUM_THREADS='2')


def test_wheel_ships_configs_tools_and_scripts(installed, tmp_path):
    mim = osp.join(installed, 'gpusq_mm', '.mim')
    for path in ('configs/gpusq/mask_rcnn_swin.py',
                 'configs/gpusq/gpusq_mask-rcnn_swin-t-p4-w7_fpn_12e_coco.py',
                 'configs/gpusq/demo/deit_tiny_dense.py',
                 'configs/gpusq/demo/deit-tiny_60e_synthetic-cls.py',
                 'model-index.yml', 'configs/gpusq/metafile.yml',
                 'configs/gpusq/demo/metafile.yml',
                 'configs/deploy/classification/'
                 'classification_onnxruntime_int8.py',
                 'tools/train.py', 'tools/deploy.py', 'tools/demo.py'):
        assert osp.isfile(osp.join(mim, path)), path
    for tool in ('train', 'test', 'deploy', 'demo', 'demo-data'):
        assert osp.isfile(osp.join(installed, 'bin', f'gpusq-{tool}')), tool
    probe = ('import json, gpusq_mm, gpusq_mm.resources as r; '
             'print(json.dumps([gpusq_mm.__file__, r.resource_dir("configs"),'
             ' r.resolve_config("gpusq/demo/deit_tiny_dense.py")]))')
    out = _run([sys.executable, '-c', probe], cwd=str(tmp_path),
               env=_env(installed))
    package, configs, resolved = json.loads(out.stdout)
    assert package.startswith(installed)  # not the checkout's package
    assert configs == osp.join(mim, 'configs')
    assert resolved == osp.join(mim, 'configs/gpusq/demo/deit_tiny_dense.py')


@pytest.mark.slow
def test_console_script_trains_an_installed_config(installed, tmp_path):
    data_cwd = str(tmp_path / 'user')  # a user's empty directory
    os.makedirs(data_cwd)
    _run([osp.join(installed, 'bin', 'gpusq-demo-data'), '--sets', 'cls',
          '--train', '64', '--val', '4'], cwd=data_cwd, env=_env(installed))
    assert len(glob.glob(osp.join(data_cwd, 'data/demo/cls/train/*/*.jpg'))) \
        == 64
    work = str(tmp_path / 'work')
    _run([osp.join(installed, 'bin', 'gpusq-train'),
          'gpusq/demo/deit_tiny_dense.py', '--work-dir', work,
          '--cfg-options', 'train_cfg.max_epochs=1',
          'train_cfg.val_interval=1', 'default_hooks.checkpoint.interval=1'],
         cwd=data_cwd, env=_env(installed))
    ckpt = load_checkpoint_file(osp.join(work, 'epoch_1.pth'))
    assert ckpt['meta']['iter'] == 2  # 64 images, batch 32
    assert all(torch.isfinite(v).all() for v in ckpt['state_dict'].values()
               if v.is_floating_point())
    # the same from `python -m gpusq_mm.cli`, a config that does not exist
    # is reported as such
    proc = subprocess.run([sys.executable, '-m', 'gpusq_mm.cli', 'train',
                           'gpusq/demo/nope.py'], cwd=data_cwd,
                          env=_env(installed), capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode != 0 and 'nope.py' in proc.stderr

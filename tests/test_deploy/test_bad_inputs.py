"""tools/deploy.py on bad input: dense or foreign checkpoints, NaN weights,
missing or unreadable images, unknown precision or codebase; errors name
the problem and nothing in the work dir changes."""
import os
import os.path as osp

import pytest
from mmengine.config import Config

from tests.bad_inputs import distiller, fails, save
from tests.utils import DEMO_CONFIGS

DEPLOY_CFG = osp.join(osp.dirname(DEMO_CONFIGS), '..', 'deploy',
                      'classification', 'classification_onnxruntime_int8.py')


@pytest.fixture
def deploy(work, tmp_path):
    """``run(checkpoint, img=..., **kw)``: tools/deploy.py's pipeline
    in-process on the tiny DeiT GPUSQ config."""
    from gpusq_mm.datasets import make_cls
    from gpusq_mm.deploy import pipeline
    make_cls(str(tmp_path / 'cls'), num_train=1, num_val=1)
    img = sorted(glob_images(str(tmp_path / 'cls')))[0]
    model_cfg = Config.fromfile(osp.join(DEMO_CONFIGS, 'deit_tiny_gpusq.py'))
    out = osp.join(work, 'deploy')

    def run(checkpoint: str, img: str = img, deploy_cfg: str = DEPLOY_CFG,
            **kw):
        return pipeline.DeployPipeline(
            Config.fromfile(deploy_cfg), model_cfg, checkpoint, img, out,
            **kw).run()

    return run


def glob_images(root: str) -> list:
    return [osp.join(d, f) for d, _, files in os.walk(root) for f in files
            if f.endswith(('.jpg', '.png'))]


def _deit_checkpoint(work: str, gpusq: bool = True, nan: bool = False) -> str:
    state = dict(distiller().architecture.state_dict())
    if nan:
        state['backbone.layers.0.ffn.layers.1.weight'][0, 0] = float('nan')
    meta = dict(gpusq=dict(phase='S', sparsity=dict(
        pattern='2:4', method='magnitude', layers=[]))) if gpusq else {}
    return save(dict(state_dict=state, meta=meta), work,
                 f'deit_{gpusq}_{nan}.pth')


def test_deploy_dense_checkpoint(work, deploy):
    path = _deit_checkpoint(work, gpusq=False)
    with fails(work, ValueError, "has no meta['gpusq']", '--dense'):
        deploy(path)


def test_deploy_checkpoint_of_another_model(work, deploy, gpusq_ckpt):
    with fails(work, ValueError, 'quantizes layers', 'another model'):
        deploy(gpusq_ckpt)


def test_deploy_nan_weights(work, deploy):
    path = _deit_checkpoint(work, nan=True)
    with fails(work, ValueError, 'NaN/inf', 'deit_True_True.pth'):
        deploy(path)


def test_deploy_missing_image(work, deploy):
    path = _deit_checkpoint(work)
    with fails(work, FileNotFoundError, 'nope.jpg', 'does not exist'):
        deploy(path, img=osp.join(work, 'nope.jpg'))


def test_deploy_unreadable_image(work, deploy):
    path = _deit_checkpoint(work)
    img = osp.join(work, 'broken.jpg')
    with open(img, 'wb') as f:
        f.write(b'\xff\xd8 not a jpeg')
    with fails(work, ValueError, 'cannot read image', 'broken.jpg'):
        deploy(path, img=img)


def test_deploy_unknown_precision(work, deploy):
    path = _deit_checkpoint(work)
    with fails(work, ValueError, 'precision', "'fp16'", 'int4'):
        deploy(path, precision='int4')


def test_deploy_unknown_codebase(work, deploy, tmp_path):
    cfg = tmp_path / 'deploy_other.py'
    cfg.write_text(f'_base_ = [{DEPLOY_CFG!r}]\n'
                   "codebase_config = dict(type='mmdet3d')\n")
    path = _deit_checkpoint(work)
    with fails(work, ValueError, "type='mmdet3d'", 'not supported',
               'mmpretrain'):
        deploy(path, deploy_cfg=str(cfg))

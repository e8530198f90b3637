"""Every file under configs/ loads; every model config builds."""
import glob
import os.path as osp

import pytest
from mmengine.config import Config

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = sorted(
    osp.relpath(p, REPO)
    for p in glob.glob(osp.join(REPO, 'configs', '**', '*.py'),
                       recursive=True))


def test_configs_found():
    assert len(CONFIGS) >= 7


@pytest.mark.parametrize('path', CONFIGS)
def test_config_loads(path):
    cfg = Config.fromfile(osp.join(REPO, path))
    if '_base_' in path.split(osp.sep):
        return  # fragments are checked through the leaves that use them
    assert 'model' in cfg, f'{path} defines no model'
    assert cfg.default_scope in ('mmdet', 'mmseg', 'mmpretrain')
    if cfg.model.get('type') == 'MixedKDDistiller':
        assert cfg.custom_imports.imports == ['gpusq_mm']
        hook_types = [h['type'] for h in cfg.custom_hooks]
        assert hook_types.index('Sparse24Hook') < hook_types.index('QATHook')


@pytest.mark.parametrize(
    'path', [p for p in CONFIGS if '_base_' not in p.split(osp.sep)])
def test_model_builds(path):
    import gpusq_mm  # noqa: F401
    from mmengine.registry import MODELS, DefaultScope
    cfg = Config.fromfile(osp.join(REPO, path))
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        model_cfg = cfg.model.copy()
        if 'data_preprocessor' in cfg:
            model_cfg.setdefault('data_preprocessor', cfg.data_preprocessor)
        model = MODELS.build(model_cfg)
    assert sum(p.numel() for p in model.parameters()) > 0

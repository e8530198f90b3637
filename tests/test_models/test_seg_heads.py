"""Soft KD for every mmseg decode head without ``conv_seg``: each registered
one is listed, and one stock mmseg config using it trains 2 iterations as a
MixedKDDistiller student on the tiny ADE set, the soft term in its losses."""
import inspect
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.model import revert_sync_batchnorm

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
ADE = osp.join(REPO, 'tests', 'data', 'ade', '')
SIZE = (128, 128)
# head -> (stock config, key of its soft term)
STOCK = {
    'SegmenterMaskTransformerHead':
    ('segmenter/segmenter_vit-t_mask_8xb1-160k_ade20k-512x512.py',
     'distill.loss_logits_decode_head_mask_norm'),
    'MaskFormerHead':
    ('maskformer/maskformer_swin-t_upernet_8xb2-160k_ade20k-512x512.py',
     'distill.loss_logits_decode_head'),
    'Mask2FormerHead': ('mask2former/mask2former_swin-t_8xb2-160k_ade20k-'
                        '512x512.py', 'distill.loss_logits_decode_head'),
    'IterativeDecodeHead':
    ('knet/knet-s3_swin-t_upernet_8xb2-adamw-80k_ade20k-512x512.py',
     'distill.loss_logits_decode_head_kernel_generate_head_conv_seg'),
    'PointHead': ('point_rend/pointrend_r50_4xb4-160k_ade20k-512x512.py',
                  'distill.loss_logits_decode_head_0_conv_seg'),
}
# parts of another head (K-Net's kernel update head and updater) share its
# config
PARTS = {'KernelUpdateHead': 'IterativeDecodeHead',
         'KernelUpdator': 'IterativeDecodeHead'}
# heads whose stock configs need packages not installed here: (config,
# module it imports); their test skips naming the module
OPTIONAL = {'VPDDepthHead': ('vpd/vpd_sd_4xb8-25k_nyu-480x480.py', 'ldm')}


def heads_without_conv_seg() -> list:
    """Registered mmseg decode heads that do not end up with ``conv_seg``:
    not a ``BaseDecodeHead``, or one that deletes it."""
    import mmseg.models  # noqa: F401
    from mmseg.models.decode_heads.decode_head import BaseDecodeHead
    from mmseg.registry import MODELS
    out = []
    for name, cls in MODELS.module_dict.items():
        if not cls.__module__.startswith('mmseg.models.decode_heads'):
            continue
        if not issubclass(cls, BaseDecodeHead) or \
                "delattr(self, 'conv_seg')" in inspect.getsource(cls) or \
                'super(BaseDecodeHead, self).__init__' in \
                inspect.getsource(cls):
            out.append(name)
    return sorted(out)


def test_every_head_without_conv_seg_has_a_stock_config():
    assert set(heads_without_conv_seg()) == set(STOCK) | set(PARTS) | set(
        OPTIONAL), (
        'a decode head without conv_seg has no stock config here (or one '
        'listed is gone): extend STOCK and the distiller\'s score taps')


def _distiller_cfg(path: str) -> Config:
    import mmseg

    import gpusq_mm  # noqa: F401
    cfg = Config.fromfile(osp.join(osp.dirname(mmseg.__file__), '.mim',
                                   'configs', path))
    model = cfg.model
    model.pop('pretrained', None)
    model.backbone.init_cfg = None
    model.data_preprocessor.size = SIZE
    kd = Config.fromfile(osp.join(REPO, 'configs', '_base_', 'gpusq',
                                  'kd_segmentation.py')).kd_cfg
    cfg.model = dict(type='MixedKDDistiller', architecture=model,
                     teacher=model, teacher_ckpt=None, distill=kd)
    return cfg


def _batch(cfg: Config):
    from mmengine.dataset import pseudo_collate
    from mmengine.registry import DATASETS
    pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations', reduce_zero_label=True),
        dict(type='Resize', scale=SIZE, keep_ratio=False),
        dict(type='PackSegInputs')
    ]
    dataset = DATASETS.build(dict(type='ADE20KDataset', data_root=ADE,
                                  data_prefix=dict(
                                      img_path='images/training',
                                      seg_map_path='annotations/training'),
                                  pipeline=pipeline))
    return pseudo_collate([dataset[i] for i in range(2)])


def test_optional_heads_skip_only_without_their_dependency():
    """VPD (depth regression, no class scores) needs Stable Diffusion's
    ``ldm``; where it is installed, its config must build a distiller."""
    import importlib.util
    for head, (path, module) in OPTIONAL.items():
        if importlib.util.find_spec(module) is None:
            continue  # the logged skip the issue allows
        from mmengine.registry import MODELS, DefaultScope
        with DefaultScope.overwrite_default_scope('mmseg'):
            model = MODELS.build(_distiller_cfg(path).model)
        assert model.taps.kind == 'none', head


@pytest.mark.slow
@pytest.mark.parametrize('head', sorted(STOCK))
def test_stock_config_trains_with_soft_kd(head):
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import MODELS, DefaultScope
    path, soft_key = STOCK[head]
    cfg = _distiller_cfg(path)
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope('mmseg'), \
            pytest.warns(UserWarning, match='teacher_ckpt is None'):
        model = revert_sync_batchnorm(MODELS.build(cfg.model))
        batch = _batch(cfg)
        used = {type(m).__name__ for m in model.architecture.modules()}
        assert head in used, f'{path} does not use {head}'
        model.train()
        optim = build_optim_wrapper(model, cfg.optim_wrapper)
        for _ in range(2):
            log_vars = model.train_step(batch, optim)
    assert soft_key in log_vars, sorted(log_vars)
    soft = float(log_vars[soft_key])
    # random teacher and student differ: the soft term is positive
    assert 0 < soft < float('inf'), log_vars
    assert any(k.startswith('student.') for k in log_vars)
    assert all(torch.isfinite(torch.tensor(float(v)))
               for v in log_vars.values())

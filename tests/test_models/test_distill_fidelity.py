"""The paper's distillation: critical layers per backbone family (one term
each), φ over several pairs, the sparse stage-2 teacher M_SF, label-free
unsupervised mode under Mixup/CutMix, and their bad inputs."""
import copy
import os.path as osp
import random
import warnings

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import MODELS, DefaultScope
from torch import nn

from tests.utils import DEMO_CONFIGS, REPO


class _Holder(nn.Module):
    """A model with just a backbone (what 'auto' looks at)."""

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone


def _backbone(scope: str, cfg: dict) -> _Holder:
    import gpusq_mm  # noqa: F401
    with DefaultScope.overwrite_default_scope(scope):
        return _Holder(MODELS.build(cfg))


FAMILIES = [
    ('mmpretrain', dict(type='VisionTransformer', arch='deit-small',
                        img_size=64, patch_size=16),
     [f'backbone.layers.{i}' for i in range(8, 12)]),
    ('mmpretrain', dict(type='SwinTransformer', arch='tiny', img_size=224),
     ['backbone.stages.2.blocks.5', 'backbone[0]']),
    ('mmdet', dict(type='SwinTransformer', embed_dims=32, depths=(1, 1, 1, 1),
                   num_heads=(1, 2, 4, 8)), ['backbone[2]', 'backbone[3]']),
    ('mmdet', dict(type='SwinTransformer', embed_dims=32, depths=(1, 1, 1, 1),
                   num_heads=(1, 2, 4, 8), out_indices=(1, 2, 3)),
     ['backbone[1]', 'backbone[2]']),
    ('mmseg', dict(type='MixVisionTransformer', embed_dims=16,
                   num_layers=(1, 1, 1, 1)), ['backbone[2]', 'backbone[3]']),
    ('mmdet', dict(type='PyramidVisionTransformerV2', embed_dims=16,
                   num_layers=(1, 1, 1, 1)), ['backbone[2]', 'backbone[3]']),
    ('mmseg', dict(type='PCPVT', embed_dims=(16, 32, 64, 128),
                   depths=(1, 1, 1, 1)), ['backbone[2]', 'backbone[3]']),
    ('mmseg', dict(type='VisionTransformer', img_size=(64, 64),
                   embed_dims=64, num_layers=9, num_heads=2),
     [f'backbone.layers.{i}' for i in range(6, 9)]),
]


@pytest.mark.parametrize('scope,cfg,expected', FAMILIES,
                         ids=[f'{s}-{c["type"]}' for s, c, _ in FAMILIES])
def test_auto_features_per_family(scope, cfg, expected):
    from gpusq_mm.models.distillers.critical_layers import critical_features
    from gpusq_mm.models.distillers.feature_pairs import FeaturePair
    from gpusq_mm.models.recorder import record_outputs
    model = _backbone(scope, cfg).eval()
    specs, family, note = critical_features(model)
    assert specs == expected and not note, (family, specs)
    # the features are what the backbone returns (or, for a stage it does
    # not return, that stage's pre-merge tokens)
    pairs = [FeaturePair(s) for s in specs]
    size = cfg.get('img_size', 64) if scope == 'mmpretrain' else 64
    with torch.no_grad(), record_outputs(
            model, sorted({p.student_path for p in pairs})) as rec:
        outs = model.backbone(torch.randn(1, 3, size, size))
    for pair in pairs:
        feat = pair.student_feature(rec)
        if pair.student_index is not None:
            assert feat is outs[pair.student_index]
        assert torch.is_tensor(feat) and feat.abs().sum() > 0
    if cfg['type'] == 'SwinTransformer' and scope == 'mmpretrain':
        # stage 3 of Swin-T before patch merging: 384 channels, 14x14
        # tokens (after merging: 768 channels, 7x7)
        assert pairs[0].student_feature(rec).shape == (1, 196, 384)


def test_auto_unknown_family_falls_back_and_says_how():
    from gpusq_mm.models.distillers.critical_layers import critical_features
    model = _backbone('mmpretrain', dict(type='ResNet', depth=18))
    specs, family, note = critical_features(model)
    assert specs == ['backbone[-1]'] and family == 'ResNet'
    assert 'ResNet' in note and 'by hand' in note and 'features=' in note
    with pytest.raises(ValueError, match='needs a model with a backbone'):
        critical_features(nn.Linear(2, 2))


def _build_leaf(name: str, **distill):
    import gpusq_mm  # noqa: F401
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'gpusq', name))
    model_cfg = cfg.model.copy()
    model_cfg.teacher_ckpt = None
    model_cfg.distill = dict(model_cfg.distill, **distill)
    if 'data_preprocessor' in cfg:
        model_cfg.setdefault('data_preprocessor', cfg.data_preprocessor)
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope(cfg.default_scope), \
            pytest.warns(UserWarning, match='teacher_ckpt is None'):
        return MODELS.build(model_cfg)


def _cls_batch(model, labels, seed=0):
    """Preprocess (training mode: the config's Mixup/CutMix run) a seeded
    batch of random images with ``labels``."""
    from mmpretrain.structures import DataSample
    gen = torch.Generator().manual_seed(123)
    data = dict(inputs=[torch.randint(0, 255, (3, 224, 224), generator=gen,
                                      dtype=torch.uint8) for _ in labels],
                data_samples=[DataSample().set_gt_label(int(i))
                              for i in labels])
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)
    return model.data_preprocessor(data, True)


@pytest.mark.slow
@pytest.mark.parametrize('leaf', ['deit_small.py', 'swin_tiny.py'])
def test_phi_over_critical_pairs_and_label_free_mode(leaf):
    """The shipped Mixup/CutMix configs: ≥ 2 critical pairs whose φ moves
    off 1 after phase S; unsupervised mode ignores every true label (the
    same losses after permuting them), supervised mode does not."""
    # random teacher and student rarely agree on a class of 1000: without
    # gating every sample imitates, so every pair has a phase-S loss
    model = _build_leaf(leaf, unsupervised=True, feature_gating=False)
    assert len(model.pairs) >= 2
    assert model.data_preprocessor.batch_augments is not None
    model.train()
    labels = [3, 7, 11, 500]
    permuted = [500, 3, 7, 11]

    def losses(lab):
        batch = _cls_batch(model, lab)
        assert 'gt_score' in batch['data_samples'][0]  # Mixup/CutMix ran
        torch.manual_seed(1)  # same drop-path draws
        with torch.no_grad():
            return model(**batch, mode='loss')

    first, second = losses(labels), losses(permuted)
    assert set(first) == set(second)
    for key in first:
        assert torch.equal(first[key], second[key]), key
    student = [k for k in first if k.startswith('student.')]
    assert student and all(first[k] > 0 for k in student), first
    # the check can fail: with true labels, permuting them changes the loss
    model.distill_cfg['unsupervised'] = False
    sup1, sup2 = losses(labels), losses(permuted)
    assert not torch.equal(sup1['student.loss'], sup2['student.loss'])

    # φ: phase-S statistics of every pair, frozen at phase Q, ≠ 1, Σφ = |C|
    assert torch.count_nonzero(model.phi.loss_sum) == len(model.pairs)
    model.on_phase_change('Q')
    phi = model.phi.phi
    assert bool(model.phi.frozen) and not torch.allclose(
        phi, torch.ones_like(phi))
    assert float(phi.sum()) == pytest.approx(len(model.pairs), rel=1e-5)
    meta = model.gpusq_meta()
    assert meta['phi_frozen'] and list(meta['phi'].values()) == phi.tolist()
    assert meta['teacher'] == 'sparse'


def _demo(**distill):
    import gpusq_mm  # noqa: F401
    cfg = Config.fromfile(osp.join(DEMO_CONFIGS, 'deit_tiny_gpusq.py'))
    model_cfg = cfg.model.copy()
    model_cfg.distill = dict(model_cfg.distill, **distill)
    model_cfg.setdefault('data_preprocessor', cfg.data_preprocessor)
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope('mmpretrain'), \
            warnings.catch_warnings():
        warnings.filterwarnings('ignore', 'MixedKDDistiller: teacher_ckpt')
        return MODELS.build(model_cfg)


def _magnitude_masks(model):
    from gpusq_mm.sparsity.pattern import magnitude_mask
    return {n: magnitude_mask(p.detach()) for n, p in
            model.architecture.named_parameters()
            if n.startswith('backbone.layers.') and n.endswith('weight')
            and p.dim() == 2}


def test_sparse_stage2_teacher_is_the_masked_student(tmp_path):
    from gpusq_mm.checkpoint_format import distiller_to_student
    model = _demo()
    masks = _magnitude_masks(model)
    student = copy.deepcopy(model.architecture.state_dict())
    # SR-STE keeps the dense weights in the parameters: the teacher must
    # still get the masked ones
    model.on_phase_change('Q', masks=masks)
    teacher = model.teacher.state_dict()
    for name, value in teacher.items():
        want = student[name] * masks[name] if name in masks else student[name]
        assert torch.equal(value, want), name
    assert all(not p.requires_grad for p in model.teacher.parameters())
    state = model.state_dict()
    assert bool(state['teacher_sparse'])
    assert any(k.startswith('teacher.') for k in state)
    # a fresh distiller restores it bit-identically
    other = _demo()
    other.load_state_dict(state)
    for name, value in other.teacher.state_dict().items():
        assert torch.equal(value, teacher[name]), name
    assert bool(other.teacher_sparse)
    # phase Q again (a resumed run) does not overwrite it
    other.architecture.backbone.layers[0].ffn.layers[1].weight.data.add_(1)
    other.on_phase_change('Q', masks=masks)
    assert torch.equal(other.teacher.state_dict()[next(iter(masks))],
                       teacher[next(iter(masks))])
    # the stripped checkpoint is the student alone
    plain = distiller_to_student(dict(state_dict=state))
    assert not any(k.startswith('teacher') for k in plain['state_dict'])
    # a phase-Q checkpoint whose teacher was removed cannot resume silently
    broken = {k: v for k, v in state.items() if not k.startswith('teacher.')}
    with pytest.raises(ValueError, match='holds no teacher'):
        _demo().load_state_dict(broken)


def test_dense_stage2_teacher_and_bad_inputs():
    model = _demo(stage2_teacher='dense')
    before = copy.deepcopy(model.teacher.state_dict())
    model.on_phase_change('Q', masks=_magnitude_masks(model))
    for name, value in model.teacher.state_dict().items():
        assert torch.equal(value, before[name])
    assert not any(k.startswith('teacher.') for k in model.state_dict())
    with pytest.raises(ValueError, match=r"stage2_teacher must be one of "
                       r"\('sparse', 'dense'\).*'sprase'"):
        _demo(stage2_teacher='sprase')
    with pytest.raises(KeyError, match=r"'backbone\.layers\.30'.*close "
                       r'matches'):
        _demo(features=['backbone.layers.30'])
    model = _demo(features=['backbone[5]'])
    from mmpretrain.structures import DataSample
    data = model.data_preprocessor(dict(
        inputs=[torch.zeros(3, 64, 64, dtype=torch.uint8)] * 2,
        data_samples=[DataSample().set_gt_label(0) for _ in range(2)]), True)
    with pytest.raises(ValueError, match=r"'backbone\[5\]'.*returned 1"):
        model(**data, mode='loss')


@pytest.mark.slow
def test_sparse_teacher_through_hooks_and_resume(tmp_path, data_cwd,
                                                 monkeypatch):
    """SR-STE masks + QAT through the real hooks: the phase-Q teacher is
    exactly 2:4, checkpoints carry it with φ in meta, --resume restores it
    bit-identically."""
    from gpusq_mm.sparsity import count_violations
    from gpusq_mm.utils import load_checkpoint_file
    from tests.utils import train_demo
    monkeypatch.chdir(data_cwd)
    hooks = [dict(type='Sparse24Hook', method='srste'),
             dict(type='QATHook', start_epoch=1, calib_samples=8),
             dict(type='RNGStateHook')]
    work = str(tmp_path / 'run')
    runner = train_demo('deit_tiny_gpusq.py', work, hooks, units=2)
    model = runner.model
    assert bool(model.teacher_sparse)
    masks = runner.hooks[[type(h).__name__ for h in runner.hooks].index(
        'Sparse24Hook')].masks
    teacher = model.teacher.state_dict()
    for name in masks:
        assert count_violations(teacher[name]) == 0, name
        assert torch.equal(teacher[name] != 0, masks[name] &
                           (teacher[name] != 0))
    ckpt = load_checkpoint_file(osp.join(work, 'epoch_2.pth'))
    saved = {k[len('teacher.'):]: v for k, v in ckpt['state_dict'].items()
             if k.startswith('teacher.')}
    assert saved.keys() == teacher.keys()
    distill = ckpt['meta']['gpusq']['distill']
    assert distill['teacher'] == 'sparse' and distill['phi_frozen']
    assert len(distill['phi']) == 2
    assert ckpt['meta']['gpusq']['phase'] == 'Q'
    first = load_checkpoint_file(osp.join(work, 'epoch_1.pth'))
    assert not any(k.startswith('teacher.') for k in first['state_dict'])
    resumed = train_demo('deit_tiny_gpusq.py', work, hooks, units=3,
                         resume_from=osp.join(work, 'epoch_2.pth'))
    for name, value in resumed.model.teacher.state_dict().items():
        assert torch.equal(value, saved[name]), name

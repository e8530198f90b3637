"""MixedKDDistiller: student/teacher roles, loss prefixes, teacher loading."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import MODELS, DefaultScope

from tests.utils import DEMO_CONFIGS


def _build(**overrides):
    import gpusq_mm  # noqa: F401
    cfg = Config.fromfile(osp.join(DEMO_CONFIGS, 'deit_tiny_gpusq.py'))
    model_cfg = cfg.model.copy()
    model_cfg.update(overrides)
    model_cfg.setdefault('data_preprocessor', cfg.data_preprocessor)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return MODELS.build(model_cfg)


def _batch(model, n=2):
    from mmpretrain.structures import DataSample
    torch.manual_seed(0)
    data = dict(inputs=[torch.randint(0, 255, (3, 32, 32), dtype=torch.uint8)
                        for _ in range(n)],
                data_samples=[DataSample().set_gt_label(i % 3)
                              for i in range(n)])
    return model.data_preprocessor(data, True)


def test_roles_and_loss_keys():
    with pytest.warns(UserWarning, match='teacher_ckpt is None'):
        model = _build()
    assert model.student is model.architecture
    assert model.data_preprocessor is model.architecture.data_preprocessor
    assert not any(p.requires_grad for p in model.teacher.parameters())
    model.train()
    assert model.architecture.training and not model.teacher.training
    data = _batch(model)
    losses = model(**data, mode='loss')
    assert set(losses) == {'student.loss', 'distill.loss_feat_backbone'}
    # feature term: gamma * MSE of the recorded backbone outputs
    with torch.no_grad():
        s = model.architecture.extract_feat(data['inputs'])[0]
        t = model.teacher.extract_feat(data['inputs'])[0]
    expected = 5.0 * torch.nn.functional.mse_loss(s, t)
    assert torch.allclose(losses['distill.loss_feat_backbone'], expected,
                          rtol=1e-5)
    losses['distill.loss_feat_backbone'].backward()
    assert model.architecture.backbone.layers[0].ffn.layers[1].weight.grad \
        is not None
    # predict/tensor are the student alone
    model.eval()
    with torch.no_grad():
        out = model(**data, mode='tensor')
        ref = model.architecture(**data, mode='tensor')
    assert torch.equal(out, ref)


def test_teacher_ckpt_initialises_teacher_and_student(tmp_path):
    with pytest.warns(UserWarning):
        dense = _build().teacher
    path = str(tmp_path / 'dense.pth')
    torch.save(dict(state_dict=dense.state_dict(), meta=dict()), path)
    model = _build(teacher_ckpt=path)
    for name, value in dense.state_dict().items():
        assert torch.equal(model.teacher.state_dict()[name], value)
        assert torch.equal(model.architecture.state_dict()[name], value)
    model.init_weights()  # must not re-initialise the loaded weights
    key = 'backbone.layers.0.ffn.layers.1.weight'
    assert torch.equal(model.architecture.state_dict()[key],
                       dense.state_dict()[key])


def test_bad_inputs(tmp_path):
    with pytest.raises(FileNotFoundError, match='teacher_ckpt'):
        _build(teacher_ckpt=str(tmp_path / 'missing.pth'))
    with pytest.raises(KeyError, match='feature_wieght'):
        _build(distill=dict(feature_wieght=1.0))
    with pytest.warns(UserWarning):
        model = _build(distill=dict(features=['backbone.nope']))
    with pytest.raises(KeyError, match='backbone.nope'):
        model(**_batch(model), mode='loss')

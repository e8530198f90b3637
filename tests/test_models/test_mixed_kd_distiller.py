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
    data = dict(inputs=[torch.randint(0, 255, (3, 64, 64), dtype=torch.uint8)
                        for _ in range(n)],
                data_samples=[DataSample().set_gt_label(i % 3)
                              for i in range(n)])
    return model.data_preprocessor(data, True)


def test_roles_and_loss_keys():
    with pytest.warns(UserWarning, match='teacher_ckpt is None'):
        model = _build(distill=dict(feature_gating=False,
                                    features=['backbone']))
    assert model.student is model.architecture
    assert model.data_preprocessor is model.architecture.data_preprocessor
    assert not any(p.requires_grad for p in model.teacher.parameters())
    model.train()
    assert model.architecture.training and not model.teacher.training
    data = _batch(model)
    losses = model(**data, mode='loss')
    assert set(losses) == {'student.loss', 'distill.loss_feat_backbone',
                           'distill.loss_logits_head_layers_head'}
    # feature term: gamma * MSE of the recorded backbone outputs; logit
    # term: beta * KL(teacher || student) of the class scores (tau = 1)
    with torch.no_grad():
        s = model.architecture.extract_feat(data['inputs'])
        t = model.teacher.extract_feat(data['inputs'])
        s_logits = model.architecture.head(s)
        t_logits = model.teacher.head(t)
    expected = 5.0 * torch.nn.functional.mse_loss(s[0], t[0])
    assert torch.allclose(losses['distill.loss_feat_backbone'], expected,
                          rtol=1e-5)
    p_t = t_logits.softmax(1)
    kl = (p_t * (p_t.log() - s_logits.log_softmax(1))).sum(1).mean()
    assert torch.allclose(losses['distill.loss_logits_head_layers_head'],
                          10.0 * kl, rtol=1e-4)
    losses['distill.loss_feat_backbone'].backward()
    assert model.architecture.backbone.layers[0].ffn.layers[1].weight.grad \
        is not None
    # predict/tensor are the student alone
    model.eval()
    with torch.no_grad():
        out = model(**data, mode='tensor')
        ref = model.architecture(**data, mode='tensor')
        pred = model(data['inputs'], _batch(model)['data_samples'],
                     mode='predict')
        pred_ref = model.architecture(data['inputs'],
                                      _batch(model)['data_samples'],
                                      mode='predict')
    assert torch.equal(out, ref)
    for a, b in zip(pred, pred_ref):
        assert torch.equal(a.pred_score, b.pred_score)
        assert torch.equal(a.pred_label, b.pred_label)


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
    with pytest.raises(KeyError, match="'backbone.layer.0'.*close matches.*"
                       "'backbone.layers.0'"):
        _build(distill=dict(features=['backbone.layer.0']))
    bad = tmp_path / 'bad.pth'
    bad.write_bytes(b'not a checkpoint')
    with pytest.raises(Exception, match='bad.pth'):
        _build(teacher_ckpt=str(bad))


def test_plain_task_checkpoint_initialises_student(tmp_path):
    from mmengine.runner.checkpoint import load_checkpoint
    with pytest.warns(UserWarning):
        model = _build()
    plain = {k: torch.randn_like(v) if v.is_floating_point() else v
             for k, v in model.architecture.state_dict().items()}
    path = str(tmp_path / 'plain.pth')
    torch.save(dict(state_dict=plain), path)
    teacher_before = {k: v.clone()
                      for k, v in model.teacher.state_dict().items()}
    load_checkpoint(model, path, map_location='cpu')
    for key, value in plain.items():
        assert torch.equal(model.architecture.state_dict()[key], value), key
    for key, value in model.teacher.state_dict().items():
        assert torch.equal(value, teacher_before[key])
    # the saved state holds the student only (teacher comes from its ckpt)
    assert not any(k.startswith('teacher.') for k in model.state_dict())
    other = str(tmp_path / 'other.pth')
    torch.save(dict(state_dict={'roi_head.fc.weight': torch.zeros(2)}), other)
    with pytest.raises(ValueError, match='matches no key of the student'):
        load_checkpoint(model, other, map_location='cpu')


def test_feature_gating_and_phi():
    from gpusq_mm.models.distillers.feature_pairs import PhiWeights
    with pytest.warns(UserWarning):
        # feature_gating 'auto': gated for a classifier
        model = _build(distill=dict(features=['backbone']))
    model.train()
    data = _batch(model, n=4)
    with torch.no_grad():
        s = model.architecture(data['inputs'], mode='tensor').argmax(1)
        t = model.teacher(data['inputs'], mode='tensor').argmax(1)
        s_f = model.architecture.extract_feat(data['inputs'])[0]
        t_f = model.teacher.extract_feat(data['inputs'])[0]
        losses = model(**data, mode='loss')
    per_sample = (s_f - t_f).pow(2).mean(1)
    expected = 5.0 * (per_sample * (s == t).float()).mean()
    assert torch.allclose(losses['distill.loss_feat_backbone'], expected,
                          atol=1e-7)

    phi = PhiWeights(2, 'inverse')
    phi.observe([torch.tensor(1.0), torch.tensor(3.0)])
    phi.observe([torch.tensor(1.0), torch.tensor(3.0)])
    info = phi.freeze()
    assert info['mean_loss'] == [1.0, 3.0]
    # inverse: 2 * (1/L) / sum(1/L) -> [1.5, 0.5]
    assert torch.allclose(phi.phi, torch.tensor([1.5, 0.5]))
    phi.observe([torch.tensor(9.0), torch.tensor(9.0)])  # frozen: ignored
    assert phi.freeze() == {}
    prop = PhiWeights(2, 'proportional')
    prop.observe([torch.tensor(1.0), torch.tensor(3.0)])
    prop.freeze()
    assert torch.allclose(prop.phi, torch.tensor([0.5, 1.5]))
    with pytest.raises(ValueError, match='unknown phi mode'):
        PhiWeights(2, 'cam')


def test_explicit_pairs_and_connector():
    pair = dict(student='backbone.layers.1.ln1',
                teacher='backbone.layers.0.ffn.layers.0')  # 96 vs 384
    with pytest.warns(UserWarning):
        model = _build(distill=dict(features=[pair], feature_gating=False))
    data = _batch(model)
    with pytest.raises(ValueError, match=r'student shape \(2, 65, 96\).*'
                       r'teacher shape \(2, 65, 384\).*connector'):
        model(**data, mode='loss')
    with pytest.warns(UserWarning):
        model = _build(distill=dict(
            features=[dict(pair, connector=dict(
                type='linear', in_channels=96, out_channels=384))],
            feature_gating=False))
    losses = model(**_batch(model), mode='loss')
    loss = losses['distill.loss_feat_backbone_layers_1_ln1']
    loss.backward()
    assert model.pairs[0].connector.weight.grad is not None
    assert 'pairs.0.connector.weight' in model.state_dict()

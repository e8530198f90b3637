"""MixedKDDistiller configs and checkpoints users get wrong: clear errors
that name the problem and the fix."""
import pytest
import torch

from tests.bad_inputs import distiller, fails, save
from tests.test_engine.toy import ToyNet

DISTILLER_CASES = {
    'misspelled distiller key': (dict(teacher_ckpts='dense.pth'), TypeError,
                                 ['teacher_ckpts']),
    'misspelled distill key': (dict(distill=dict(soft_wieght=1.0)),
                               KeyError, ['soft_wieght', 'valid keys']),
    'missing teacher checkpoint': (dict(teacher_ckpt='work_dirs/nope.pth'),
                                   FileNotFoundError,
                                   ['teacher_ckpt', 'does not exist']),
    'missing teacher config': (dict(teacher='configs/nope.py'),
                               FileNotFoundError,
                               ['teacher config', 'does not exist']),
    'feature path misspelled': (dict(distill=dict(features=['backbone.lyrs'])),
                                KeyError, ['backbone.lyrs', 'close matches']),
    'connector without channels': (
        dict(distill=dict(features=[dict(student='backbone',
                                         connector=dict(type='linear'))])),
        ValueError, ['connector', 'in_channels', 'out_channels']),
    'unknown connector': (
        dict(distill=dict(features=[dict(
            student='backbone', connector=dict(type='mlp', in_channels=1,
                                               out_channels=1))])),
        ValueError, ['unknown connector', 'conv1x1']),
    'unknown phi mode': (dict(distill=dict(phi='cam')), ValueError,
                         ['phi', 'inverse']),
    'bad feature gating': (dict(distill=dict(feature_gating='yes')),
                           ValueError, ['feature_gating', "'auto'"]),
}


@pytest.mark.parametrize('case', list(DISTILLER_CASES))
def test_bad_distiller_config(work, case):
    overrides, exc, words = DISTILLER_CASES[case]
    with fails(work, exc, *words):
        distiller(**overrides)


def test_feature_gating_on_a_detector(work):
    with fails(work, ValueError, 'feature_gating', 'classifiers only',
               'two_stage'):
        distiller('mask_rcnn_swin_tiny_gpusq.py', 'mmdet',
                   distill=dict(feature_gating=True))


def test_feature_shapes_differ_without_connector(work):
    pair = dict(student='backbone.layers.1.ln1',
                teacher='backbone.layers.0.ffn.layers.0')  # 64 vs 256
    model = distiller(distill=dict(features=[pair], feature_gating=False))
    from mmpretrain.structures import DataSample
    data = model.data_preprocessor(dict(
        inputs=[torch.zeros(3, 32, 32, dtype=torch.uint8)] * 2,
        data_samples=[DataSample().set_gt_label(0)] * 2), True)
    with fails(work, ValueError, 'student shape', 'teacher shape',
               'add a connector'):
        model(**data, mode='loss')


def test_teacher_checkpoint_of_another_model(work):
    other = save(dict(state_dict=dict(ToyNet().state_dict())), work,
                  'toy_dense.pth')
    with fails(work, ValueError, 'teacher_ckpt', 'does not fit',
               'missing key', 'another model'):
        distiller(teacher_ckpt=other)


def test_load_from_checkpoint_of_another_model(work):
    other = save(dict(state_dict=dict(ToyNet().state_dict())), work,
                  'toy_dense.pth')
    model = distiller()
    from mmengine.runner.checkpoint import load_checkpoint
    with fails(work, ValueError, 'matches no key of the student',
               'another model'):
        load_checkpoint(model, other, map_location='cpu')

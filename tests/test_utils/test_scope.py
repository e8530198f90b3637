"""Pruning/quantization scope: backbone, backbone+neck, all; patch layers
dense and float by default; fallback for models without a backbone."""
import pytest
from torch import nn

from gpusq_mm.quantization import select_quant_layers
from gpusq_mm.sparsity import find_layers
from gpusq_mm.utils.scope import (PATCH_REASON, check_scope, resolve_scope,
                                  scope_reasons)


class PatchEmbed(nn.Module):  # the class name is what marks patch layers

    def __init__(self) -> None:
        super().__init__()
        self.projection = nn.Conv2d(32, 64, 2, 2)


class _Backbone(nn.Module):

    def __init__(self) -> None:
        super().__init__()
        # like MiT: the stage's patch embedding is layers.N.0
        self.layers = nn.ModuleList([nn.ModuleList([PatchEmbed(),
                                                    nn.Linear(64, 64)])])


def _detector() -> nn.Module:
    model = nn.Module()
    model.backbone = _Backbone()
    model.neck = nn.Linear(64, 64)
    model.head = nn.Linear(64, 64)
    return model


def _pruned(model, **kwargs):
    return {d.name for d in find_layers(model, **kwargs) if d.eligible}


def test_scopes_select_backbone_neck_all():
    model = _detector()
    block = 'backbone.layers.0.1.weight'
    assert _pruned(model, scope='backbone', keep_patch_layers=True) == {
        block}
    assert _pruned(model, scope='backbone+neck', keep_patch_layers=True) \
        == {block, 'neck.weight'}
    assert _pruned(model, scope='all', keep_patch_layers=True) == {
        block, 'neck.weight', 'head.weight'}
    assert 'backbone.layers.0.0.projection.weight' in _pruned(
        model, scope='all')  # unless patch layers are asked for
    reasons = {d.name: d.reason for d in find_layers(
        model, scope='backbone', keep_patch_layers=True)}
    assert reasons['head.weight'] == "outside scope 'backbone'"
    assert reasons['backbone.layers.0.0.projection.weight'] == PATCH_REASON


def test_quant_scope_and_patch_layers():
    model = _detector()
    decisions = select_quant_layers(model, scope='backbone')
    assert decisions == {'backbone.layers.0.0.projection': PATCH_REASON,
                         'backbone.layers.0.1': '',
                         'neck': "outside scope 'backbone'",
                         'head': "outside scope 'backbone'"}
    decisions = select_quant_layers(model, scope='backbone',
                                    quant_patch_embed=True,
                                    exclude=[r'layers\.0\.1'])
    assert decisions['backbone.layers.0.0.projection'] == ''
    assert decisions['backbone.layers.0.1'] == 'matched by exclude'


def test_model_without_backbone_falls_back_to_all():
    bare = nn.Sequential(nn.Linear(64, 64))
    scope, note = resolve_scope(bare, 'backbone')
    assert scope == 'all' and "has none, using scope 'all'" in note
    assert resolve_scope(_detector(), 'backbone+neck') == ('backbone+neck',
                                                          '')
    assert scope_reasons(bare, ['0'], scope) == {'0': ''}
    with pytest.raises(ValueError, match="unknown scope 'heads'"):
        check_scope('heads', 'QATHook')

"""``features='auto'``: the critical (later-stage) feature layers of a model.

The paper imitates later-stage features, one term per layer (its list is
not given; these defaults are ours, see ``shared/docs/paper.md`` §2):

- hierarchical backbones (Swin in mmdet/mmseg/mmpretrain, MiT/SegFormer,
  PVT, PVTv2, Twins): the outputs of the last two stages (stages 3 and 4),
  taken where the backbone returns them (``backbone[i]``: position ``i`` of
  the tuple the backbone returns for its ``out_indices``). A stage the
  backbone does not return (mmpretrain's Swin returns stage 4 only) is
  taken at the output of that stage's last block, before patch merging;
- plain ViT/DeiT (mmpretrain, mmseg): the last third of the blocks
  (DeiT-S: blocks 9-12), their token outputs including the CLS token;
- any other backbone: its last returned level, with a log line naming the
  family and how to list layers by hand.

Detectors and segmentors use their backbone's levels (a neck can be added
by hand: ``features=['auto', 'neck']``).
"""
import math
from typing import List, Optional, Tuple

from torch import nn

HIERARCHICAL = ('SwinTransformer', 'SwinTransformerV2',
                'MixVisionTransformer', 'PyramidVisionTransformer',
                'PyramidVisionTransformerV2', 'PCPVT', 'SVT')
PLAIN_VIT = ('VisionTransformer', )
HOW_TO = ("list them by hand, e.g. distill=dict(features=['backbone[-1]', "
          "'backbone.layers.10']) (a module path, optionally with [i] for "
          'one element of its returned tuple)')


def _family(backbone: nn.Module, names: Tuple[str, ...]) -> Optional[str]:
    for cls in type(backbone).__mro__:
        if cls.__name__ in names:
            return cls.__name__
    return None


def _out_indices(backbone: nn.Module) -> Optional[List[int]]:
    indices = getattr(backbone, 'out_indices', None)
    if indices is None:
        return None
    if isinstance(indices, int):
        indices = [indices]
    return [int(i) for i in indices]


def _num_stages(backbone: nn.Module) -> Optional[int]:
    for attr in ('stages', 'layers'):
        stages = getattr(backbone, attr, None)
        if isinstance(stages, nn.ModuleList):
            return len(stages)
    depths = getattr(backbone, 'depths', None)
    return len(depths) if depths is not None else None


def _stage_tap(backbone: nn.Module, stage: int) -> Optional[str]:
    """A stage the backbone does not return: its last block's output."""
    stages = getattr(backbone, 'stages', None)
    blocks = getattr(stages[stage], 'blocks', None) if isinstance(
        stages, nn.ModuleList) else None
    if isinstance(blocks, nn.ModuleList) and len(blocks):
        return f'backbone.stages.{stage}.blocks.{len(blocks) - 1}'
    return None


def _hierarchical(backbone: nn.Module) -> Optional[List[str]]:
    num = _num_stages(backbone)
    indices = _out_indices(backbone)
    if not num or num < 2 or indices is None:
        return None
    specs = []
    for stage in (num - 2, num - 1):
        if stage in indices:
            specs.append(f'backbone[{indices.index(stage)}]')
            continue
        tap = _stage_tap(backbone, stage)
        if tap is None:
            return None
        specs.append(tap)
    return specs


def _plain_vit(backbone: nn.Module) -> Optional[List[str]]:
    layers = getattr(backbone, 'layers', None)
    if not isinstance(layers, nn.ModuleList) or not len(layers):
        return None
    num = len(layers)
    count = max(min(2, num), math.ceil(num / 3))
    return [f'backbone.layers.{i}' for i in range(num - count, num)]


def critical_features(model: nn.Module) -> Tuple[List[str], str, str]:
    """Resolve ``features='auto'`` for ``model``.

    Args:
        model (nn.Module): An mmpretrain classifier, mmseg segmentor or mmdet
            detector (anything with a ``backbone``).

    Returns:
        tuple: ``(specs, family, note)``: the feature specs (module paths,
        ``backbone[i]`` for a returned level), the backbone family, and a
        note for the log (empty unless the family is unknown).

    Raises:
        ValueError: The model has no ``backbone``.
    """
    backbone = getattr(model, 'backbone', None)
    if not isinstance(backbone, nn.Module):
        raise ValueError(f"features='auto' needs a model with a backbone; "
                         f'{type(model).__name__} has none: {HOW_TO}')
    family = _family(backbone, HIERARCHICAL)
    specs = _hierarchical(backbone) if family else None
    if specs is None and _family(backbone, PLAIN_VIT):
        family = _family(backbone, PLAIN_VIT)
        specs = _plain_vit(backbone)
    if specs:
        return specs, family, ''
    family = type(backbone).__name__
    note = (f"features='auto' does not know the backbone family {family}; "
            "it imitates the backbone's last returned level (backbone[-1]) "
            f'only. To pick critical layers, {HOW_TO}')
    return ['backbone[-1]'], family, note

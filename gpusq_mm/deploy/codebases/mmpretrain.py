"""mmpretrain classifiers (ViT/DeiT/Swin) to ONNX: logits."""
from typing import List

import numpy as np
from torch import Tensor, nn

from .base import BaseExporter, check_part, cosine

BACKBONES = ('VisionTransformer', 'DistilledVisionTransformer',
             'SwinTransformer', 'SwinTransformerV2')
NECKS = ('None', 'GlobalAveragePooling')
HEADS = ('VisionTransformerClsHead', 'LinearClsHead', 'DeiTClsHead')
MIN_COSINE = 0.999


class _Logits(nn.Module):

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, inputs: Tensor):
        out = self.model(inputs, mode='tensor')
        return (out[-1] if isinstance(out, (tuple, list)) else out, )


class MMPretrainExporter(BaseExporter):
    """ImageClassifier (ViT/DeiT/Swin backbones) to ``logits``.

    Parity: logits cosine >= 0.999 and the same top-1 class. All-zero
    logits (either side) fail: their cosine is NaN (see
    :func:`.base.cosine`).
    """

    scope = 'mmpretrain'
    preprocessor_type = 'ClsDataPreprocessor'
    output_names = ['logits']

    def check_supported(self, model: nn.Module) -> None:
        check_part('mmpretrain', 'classifier', model, ('ImageClassifier', ))
        check_part('mmpretrain', 'backbone', model.backbone, BACKBONES)
        check_part('mmpretrain', 'neck', getattr(model, 'neck', None), NECKS)
        check_part('mmpretrain', 'head', getattr(model, 'head', None), HEADS)

    def export_module(self, model: nn.Module) -> nn.Module:
        return _Logits(model)

    def compare(self, ref_outputs: List[np.ndarray],
                ort_outputs: List[np.ndarray]) -> dict:
        ref, got = ref_outputs[0], ort_outputs[0]
        cos = cosine(ref, got)
        top1 = bool((ref.argmax(-1) == got.argmax(-1)).all())
        return dict(logits_cosine=cos, top1_equal=top1,
                    max_abs_diff=float(np.abs(ref - got).max()),
                    all_zero=bool(not ref.any() or not got.any()),
                    passed=bool(cos >= MIN_COSINE) and top1)

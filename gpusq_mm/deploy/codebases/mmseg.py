"""mmseg encoder-decoders (UPerNet Swin, SegFormer) to ONNX: whole-image
inference, logits resized to the input size, and the label map."""
from typing import List

import numpy as np
import torch.nn.functional as F
from torch import Tensor, nn

from ..rewrites import replace_adaptive_pools
from .base import BaseExporter, UnsupportedModelError, check_part

SEGMENTORS = ('EncoderDecoder', )
BACKBONES = ('MixVisionTransformer', 'SwinTransformer', 'VisionTransformer')
DECODE_HEADS = ('SegformerHead', 'UPerHead', 'FCNHead')
MIN_AGREEMENT = 0.99
# a flipped pixel is a tie (not a disagreement) only where PyTorch's own
# top-2 logit margin is below TIE_MARGIN and the image's largest logit
# difference is below TIE_MAX_LOGIT_DIFF; both fixed (a band derived from
# the measured error would excuse worse graphs); codebase_config.parity
# overrides them
TIE_MARGIN = 0.1
TIE_MAX_LOGIT_DIFF = 0.1


class _WholeInference(nn.Module):
    """``encode_decode`` with the resize taken from the input tensor, so
    the graph also works with dynamic shapes; the auxiliary head (training
    only) is not exported."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, inputs: Tensor):
        head = self.model.decode_head
        logits = head.forward(self.model.extract_feat(inputs))
        logits = F.interpolate(logits, size=inputs.shape[2:],
                               mode='bilinear',
                               align_corners=head.align_corners)
        return logits, logits.argmax(dim=1)


class MMSegExporter(BaseExporter):
    """EncoderDecoder to ``seg_logits`` ``(N, C, H, W)`` and
    ``seg_labels`` ``(N, H, W)``.

    Parity: pixel agreement of the label maps >= 99%, counting a flipped
    pixel as a tie where PyTorch's top-2 margin is below
    ``codebase_config.parity.tie_margin`` (default 0.1) and the image's
    largest logit difference is below ``tie_max_logit_diff`` (default
    0.1).
    """

    scope = 'mmseg'
    preprocessor_type = 'SegDataPreProcessor'
    output_names = ['seg_logits', 'seg_labels']

    def check_supported(self, model: nn.Module) -> None:
        check_part('mmseg', 'segmentor', model, SEGMENTORS)
        check_part('mmseg', 'backbone', model.backbone, BACKBONES)
        check_part('mmseg', 'decode head', model.decode_head, DECODE_HEADS)
        axes = (self.deploy_cfg.onnx_config.get('dynamic_axes') or {}).get(
            'input', {})
        if type(model.decode_head).__name__ == 'UPerHead' and (
                2 in axes or 3 in axes):
            raise UnsupportedModelError(
                'mmseg exporter: UPerHead (its pyramid pooling, '
                'AdaptiveAvgPool2d) is exported with constant bins, which '
                'needs static height and width; supported: a deploy config '
                'without dynamic H/W, e.g. '
                'segmentation_onnxruntime_int8_static.py or '
                'segmentation_tensorrt-int8-sparse_static-512x512.py')
        mode = (model.test_cfg or {}).get('mode', 'whole')
        if mode != 'whole':
            raise UnsupportedModelError(
                f"mmseg exporter: test_cfg.mode={mode!r} is not supported; "
                "supported: 'whole' (set model.test_cfg = dict(mode='whole'))")

    def export_module(self, model: nn.Module) -> nn.Module:
        replace_adaptive_pools(model)  # UPerNet's pyramid pooling
        return _WholeInference(model)

    def _tie_rule(self) -> tuple:
        parity = (self.deploy_cfg.get('codebase_config') or {}).get(
            'parity') or {}
        return (float(parity.get('tie_margin', TIE_MARGIN)),
                float(parity.get('tie_max_logit_diff', TIE_MAX_LOGIT_DIFF)))

    def compare(self, ref_outputs: List[np.ndarray],
                ort_outputs: List[np.ndarray]) -> dict:
        ref, got = ref_outputs[1], ort_outputs[1]
        flipped = ref != got
        diff = np.abs(ref_outputs[0] - ort_outputs[0])
        max_diff = float(diff.max())
        tie_margin, tie_cap = self._tie_rule()
        ties = np.zeros_like(flipped)
        if flipped.any() and max_diff <= tie_cap:
            top2 = np.sort(ref_outputs[0], axis=1)[:, -2:]
            ties = flipped & (top2[:, 1] - top2[:, 0] <= tie_margin)
        agreement = float(1.0 - (flipped & ~ties).mean())
        return dict(pixel_agreement=float(1.0 - flipped.mean()),
                    agreement_with_ties=agreement,
                    tie_pixels=int(ties.sum()),
                    max_abs_logit_diff=max_diff,
                    passed=agreement >= MIN_AGREEMENT)

"""Traceable end-to-end wrappers of mmdet detectors (standard ONNX ops).

Each wrapper calls the detector's own ``extract_feat`` and head modules
(so quantized or sparse layers inside them are traced as they are) and
replaces mmdet's Python post-processing by :mod:`.ops`. The input is
one image at a static ``(H, W)``; boxes are in that input's pixel frame and
are clipped to it (mmdet clips to the unpadded ``img_shape``: the two agree
whenever the resized image fills the input).

Outputs: ``dets [N, 5]`` (x1, y1, x2, y2, score) by decreasing score,
``labels [N]`` (int64) and, for instance segmentation, ``masks [N, H, W]``
(uint8, 0/1).
"""
from typing import Sequence, Tuple

import torch
from mmengine.config import ConfigDict
from torch import Tensor, nn

from .ops import (batched_nms, clip_boxes, delta_xywh_decode,
                  multilevel_roi_align, paste_masks, topk_sorted)

# Below this score a candidate is dropped by NMS; invalid boxes (zero
# width/height, filtered out by mmdet's ``min_bbox_size``) get it.
_INVALID = -1.0


def _level_candidates(scores: Tensor, deltas: Tensor, priors: Tensor,
                      nms_pre: int) -> Tuple[Tensor, Tensor, Tensor]:
    """Keep the ``nms_pre`` best flattened (prior, class) scores of a level.

    Args:
        scores (Tensor): ``[A, C]`` activated scores.
        deltas (Tensor): ``[A, 4]`` box regression.
        priors (Tensor): ``[A, 4]`` anchors.
        nms_pre (int): Candidates kept per level (<= 0: all).

    Returns:
        tuple: scores ``[K]``, labels ``[K]``, (deltas, priors) ``[K, 4]``
        each stacked as ``[K, 8]``.
    """
    num_classes = scores.shape[1]
    flat = scores.reshape(-1)
    if 0 < nms_pre < flat.shape[0]:  # static: a constant-K TopK
        flat, index = flat.topk(nms_pre)
    else:
        index = torch.arange(flat.shape[0], device=flat.device)
    prior_index = index // num_classes
    boxes = torch.cat([deltas[prior_index], priors[prior_index]], dim=1)
    return flat, index % num_classes, boxes


def _drop_small(boxes: Tensor, scores: Tensor, min_size: float) -> Tensor:
    """Give boxes not wider and taller than ``min_size`` an invalid score
    (mmdet's ``min_bbox_size`` filter, without data-dependent shapes)."""
    if min_size < 0:
        return scores
    wh = boxes[:, 2:] - boxes[:, :2]
    valid = (wh[:, 0] > min_size) & (wh[:, 1] > min_size)
    return torch.where(valid, scores, torch.full_like(scores, _INVALID))


def _flatten_level(x: Tensor, channels: int) -> Tensor:
    """``[1, A*ch, h, w]`` -> ``[h*w*A, ch]`` (mmdet's prior order)."""
    return x[0].permute(1, 2, 0).reshape(-1, channels)


class _DetExport(nn.Module):
    """Common part: the model, the input size and the final-stage config."""

    def __init__(self, model: nn.Module, input_hw: Sequence[int],
                 final_cfg: ConfigDict, pre_top_k: int) -> None:
        super().__init__()
        self.model = model
        self.input_hw = tuple(int(s) for s in input_hw)
        self.final_cfg = final_cfg
        self.pre_top_k = pre_top_k

    def _priors(self, head: nn.Module, maps: Sequence[Tensor]) -> list:
        sizes = [tuple(int(s) for s in m.shape[-2:]) for m in maps]
        return head.prior_generator.grid_priors(sizes, device=maps[0].device)

    def _final_nms(self, boxes: Tensor, scores: Tensor,
                   labels: Tensor) -> Tuple[Tensor, Tensor]:
        """Score threshold, per-class NMS and ``max_per_img``."""
        cfg = self.final_cfg
        if self.pre_top_k > 0:
            scores, index = topk_sorted(scores, self.pre_top_k)
            boxes, labels = boxes[index], labels[index]
        keep = batched_nms(boxes, scores, labels, cfg.nms.iou_threshold,
                           cfg.score_thr, cfg.max_per_img)
        dets = torch.cat([boxes[keep], scores[keep][:, None]], dim=1)
        return dets, labels[keep]


class SingleStageExport(_DetExport):
    """Anchor-based one-stage detectors with a sigmoid classifier and
    ``DeltaXYWHBBoxCoder`` (RetinaNet)."""

    def forward(self, inputs: Tensor) -> Tuple[Tensor, Tensor]:
        head = self.model.bbox_head
        cls_scores, bbox_preds = head(self.model.extract_feat(inputs))
        priors = self._priors(head, cls_scores)
        mlvl = [
            _level_candidates(
                _flatten_level(c, head.cls_out_channels).sigmoid(),
                _flatten_level(b, 4), p, self.final_cfg.get('nms_pre', -1))
            for c, b, p in zip(cls_scores, bbox_preds, priors)
        ]
        scores = torch.cat([m[0] for m in mlvl])
        labels = torch.cat([m[1] for m in mlvl])
        pairs = torch.cat([m[2] for m in mlvl])
        boxes = delta_xywh_decode(pairs[:, 4:], pairs[:, :4],
                                  head.bbox_coder, self.input_hw)
        scores = _drop_small(boxes, scores,
                             self.final_cfg.get('min_bbox_size', -1))
        return self._final_nms(boxes, scores, labels)


class TwoStageExport(_DetExport):
    """Faster/Mask R-CNN: RPN, ``StandardRoIHead`` with a softmax
    ``ConvFCBBoxHead`` and, when ``with_mask``, an ``FCNMaskHead``."""

    def __init__(self, model: nn.Module, input_hw: Sequence[int],
                 final_cfg: ConfigDict, pre_top_k: int,
                 with_mask: bool) -> None:
        super().__init__(model, input_hw, final_cfg, pre_top_k)
        self.with_mask = with_mask

    def forward(self, inputs: Tensor) -> Tuple[Tensor, ...]:
        feats = self.model.extract_feat(inputs)
        rois = self._proposals(feats)
        dets, labels = self._detect(feats, rois)
        if not self.with_mask:
            return dets, labels
        return dets, labels, self._masks(feats, dets, labels)

    def _proposals(self, feats: Sequence[Tensor]) -> Tensor:
        """RPN: per-level top-k, decoding, per-level NMS -> ``[R, 5]``."""
        head = self.model.rpn_head
        cfg = head.test_cfg
        cls_scores, bbox_preds = head(feats)
        priors = self._priors(head, cls_scores)
        scores, boxes, levels = [], [], []
        for i, (c, b, p) in enumerate(zip(cls_scores, bbox_preds, priors)):
            s, _, pair = _level_candidates(
                _flatten_level(c, 1).sigmoid(), _flatten_level(b, 4), p,
                cfg.get('nms_pre', -1))
            scores.append(s)
            boxes.append(pair)
            levels.append(torch.full_like(s, i, dtype=torch.int64))
        pairs = torch.cat(boxes)
        boxes = delta_xywh_decode(pairs[:, 4:], pairs[:, :4],
                                  head.bbox_coder, self.input_hw)
        scores = _drop_small(boxes, torch.cat(scores),
                             cfg.get('min_bbox_size', -1))
        keep = batched_nms(boxes, scores, torch.cat(levels),
                           cfg.nms.iou_threshold, _INVALID / 2,
                           cfg.max_per_img)
        return _with_batch_index(boxes[keep])

    def _detect(self, feats: Sequence[Tensor],
                rois: Tensor) -> Tuple[Tensor, Tensor]:
        """RoI head: pooled features, box head, decoding, class NMS."""
        roi_head = self.model.roi_head
        head = roi_head.bbox_head
        extractor = roi_head.bbox_roi_extractor
        pooled = multilevel_roi_align(feats[:extractor.num_inputs], rois,
                                      extractor)
        cls_score, bbox_pred = head(pooled)
        scores = cls_score.softmax(-1)[:, :-1]
        num_rois, num_classes = scores.shape
        reg_classes = 1 if head.reg_class_agnostic else num_classes
        priors = rois[:, 1:].repeat_interleave(reg_classes, dim=0)
        boxes = delta_xywh_decode(priors, bbox_pred.reshape(-1, 4),
                                  head.bbox_coder, self.input_hw)
        boxes = boxes.reshape(-1, reg_classes, 4).expand(
            -1, num_classes, 4).reshape(-1, 4)
        labels = torch.arange(num_classes, device=rois.device).repeat(
            scores.shape[0])
        return self._final_nms(boxes, scores.reshape(-1), labels)

    def _masks(self, feats: Sequence[Tensor], dets: Tensor,
               labels: Tensor) -> Tensor:
        """Mask head on the detections, pasted into the input frame."""
        roi_head = self.model.roi_head
        extractor = roi_head.mask_roi_extractor
        pooled = multilevel_roi_align(feats[:extractor.num_inputs],
                                      _with_batch_index(dets[:, :4]),
                                      extractor)
        logits = roi_head.mask_head(pooled)
        size = logits.shape[-1]
        if logits.shape[1] > 1:
            index = labels[:, None, None, None].expand(-1, 1, size, size)
            logits = logits.gather(1, index)
        probs = paste_masks(logits[:, 0].sigmoid(), dets[:, :4],
                            *self.input_hw)
        threshold = self.final_cfg.mask_thr_binary
        return (probs >= threshold).to(torch.uint8)


class DETRExport(_DetExport):
    """DETR family (DINO, Deformable DETR) with a sigmoid classifier:
    the detector's own ``forward_transformer`` and head, then mmdet's
    top-k decoding (no NMS). The padding mask is that of an image filling
    the whole static input."""

    def __init__(self, model: nn.Module, input_hw: Sequence[int],
                 final_cfg: ConfigDict, pre_top_k: int) -> None:
        super().__init__(model, input_hw, final_cfg, pre_top_k)
        from mmdet.structures import DetDataSample
        sample = DetDataSample()
        sample.set_metainfo(dict(batch_input_shape=self.input_hw,
                                 img_shape=self.input_hw,
                                 pad_shape=self.input_hw))
        self._samples = [sample]

    def forward(self, inputs: Tensor) -> Tuple[Tensor, Tensor]:
        feats = self.model.extract_feat(inputs)
        head_inputs = self.model.forward_transformer(feats, self._samples)
        all_cls, all_boxes = self.model.bbox_head(
            head_inputs['hidden_states'], head_inputs['references'])
        cls_score, box = all_cls[-1][0], all_boxes[-1][0]
        num_classes = cls_score.shape[-1]
        scores, index = cls_score.sigmoid().reshape(-1).topk(
            self.final_cfg.max_per_img)
        box = box[index // num_classes]
        cxcy, wh = box[:, :2], box[:, 2:]
        h, w = self.input_hw
        boxes = torch.cat([cxcy - wh * 0.5, cxcy + wh * 0.5], dim=1)
        boxes = clip_boxes(boxes * boxes.new_tensor([w, h, w, h]),
                           self.input_hw)
        dets = torch.cat([boxes, scores[:, None]], dim=1)
        return dets, index % num_classes


def _with_batch_index(boxes: Tensor) -> Tensor:
    """``[N, 4]`` boxes -> ``[N, 5]`` RoIs of image 0."""
    return torch.cat([boxes.new_zeros(boxes.shape[0], 1), boxes], dim=1)

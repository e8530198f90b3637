"""Detection post-processing written with standard ONNX operators only.

Each function runs eagerly in PyTorch and traces (``torch.onnx.export``,
``dynamo=False``, opset >= 16) to operators of the default ONNX domain:
``NonMaxSuppression``, ``RoiAlign``, ``TopK`` (from ``sort``), ``Gather``,
``MatMul`` and element-wise arithmetic. Sizes that depend on the data (the
number of boxes that survive NMS) stay dynamic in the graph; nothing here
converts such a size to a Python int.

The functions reproduce mmdet 3.x test-time behaviour exactly where the
operators allow it (box decoding, per-level/per-class NMS via the coordinate
offset trick of ``mmcv.ops.batched_nms``, RoI level mapping, bilinear mask
pasting); the differences are documented where they occur.
"""
import math
from typing import Sequence, Tuple

import torch
import torchvision
from torch import Tensor

_INT64_MAX = 2**63 - 1
# mmdet decode()'s default, used by every head calling it
WH_RATIO_CLIP = 16 / 1000


class _NMS(torch.autograd.Function):
    """Single-image, single-class NMS exported as ``NonMaxSuppression``."""

    @staticmethod
    def forward(ctx, boxes: Tensor, scores: Tensor, iou_threshold: float,
                score_threshold: float, max_output: int) -> Tensor:
        idx = torch.nonzero(scores > score_threshold).squeeze(1)
        keep = torchvision.ops.nms(boxes[idx], scores[idx], iou_threshold)
        return idx[keep[:max_output]]

    @staticmethod
    def symbolic(g, boxes, scores, iou_threshold, score_threshold,
                 max_output):
        boxes = g.op('Unsqueeze', boxes,
                     g.op('Constant', value_t=torch.tensor([0])))
        scores = g.op('Unsqueeze', scores,
                      g.op('Constant', value_t=torch.tensor([0, 1])))
        selected = g.op(
            'NonMaxSuppression', boxes, scores,
            g.op('Constant', value_t=torch.tensor([max_output])),
            g.op('Constant', value_t=torch.tensor([iou_threshold])),
            g.op('Constant', value_t=torch.tensor([score_threshold])))
        column = g.op('Gather', selected,
                      g.op('Constant', value_t=torch.tensor([2])), axis_i=1)
        return g.op('Squeeze', column,
                    g.op('Constant', value_t=torch.tensor([1])))


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float,
        score_threshold: float = -math.inf,
        max_output: int = _INT64_MAX) -> Tensor:
    """Indices of the boxes kept by NMS, by decreasing score.

    Args:
        boxes (Tensor): ``[N, 4]`` boxes (x1, y1, x2, y2).
        scores (Tensor): ``[N]`` scores.
        iou_threshold (float): Boxes overlapping a kept box by more than
            this IoU are dropped.
        score_threshold (float): Only boxes scoring above it are kept.
            Defaults to -inf (all).
        max_output (int): Keep at most this many. Defaults to all.

    Returns:
        Tensor: ``[K]`` int64 indices into ``boxes``.
    """
    return _NMS.apply(boxes, scores, float(iou_threshold),
                      float(score_threshold), int(max_output))


def batched_nms(boxes: Tensor, scores: Tensor, groups: Tensor,
                iou_threshold: float, score_threshold: float = -math.inf,
                max_output: int = _INT64_MAX) -> Tensor:
    """NMS applied independently within each group (class or level).

    Uses the offset trick of ``mmcv.ops.batched_nms``: boxes of group ``g``
    are shifted by ``g * (max coordinate + 1)`` so that boxes of different
    groups never overlap, then one NMS runs on all of them.

    Runs in float32 (class offsets overflow float16: 80 classes x 1344).

    Returns:
        Tensor: ``[K]`` indices of the kept boxes, by decreasing score.
    """
    boxes, scores = boxes.float(), scores.float()
    offsets = groups.to(boxes.dtype) * (boxes.max() + 1)
    return nms(boxes + offsets[:, None], scores, iou_threshold,
               score_threshold, max_output)


def topk_sorted(scores: Tensor, k: int) -> Tuple[Tensor, Tensor]:
    """The ``k`` largest of ``scores`` (all of them if fewer), descending.

    ``sort`` + slice export to ``TopK`` over the dynamic length followed by
    a ``Slice``, so ``k`` may exceed the number of elements.
    """
    values, index = scores.sort(descending=True)
    return values[:k], index[:k]


def delta_xywh_decode(priors: Tensor, deltas: Tensor, coder,
                      max_shape: Sequence[int]) -> Tensor:
    """``DeltaXYWHBBoxCoder.decode`` for ``[N, 4]`` priors and deltas.

    Args:
        priors (Tensor): ``[N, 4]`` anchors or RoIs (x1, y1, x2, y2).
        deltas (Tensor): ``[N, 4]`` regression output.
        coder (DeltaXYWHBBoxCoder): The head's coder (means, stds, clamps).
        max_shape (Sequence[int]): ``(H, W)`` to clip to (when the coder
            clips).

    Returns:
        Tensor: ``[N, 4]`` decoded boxes.
    """
    deltas = deltas * deltas.new_tensor(coder.stds) + deltas.new_tensor(
        coder.means)
    pxy = (priors[:, :2] + priors[:, 2:]) * 0.5
    pwh = priors[:, 2:] - priors[:, :2]
    dxy_wh = pwh * deltas[:, :2]
    dwh = deltas[:, 2:]
    max_ratio = abs(math.log(WH_RATIO_CLIP))
    if coder.add_ctr_clamp:
        dxy_wh = dxy_wh.clamp(min=-coder.ctr_clamp, max=coder.ctr_clamp)
        dwh = dwh.clamp(max=max_ratio)
    else:
        dwh = dwh.clamp(min=-max_ratio, max=max_ratio)
    gxy = pxy + dxy_wh
    gwh = pwh * dwh.exp()
    boxes = torch.cat([gxy - gwh * 0.5, gxy + gwh * 0.5], dim=-1)
    if coder.clip_border:
        boxes = clip_boxes(boxes, max_shape)
    return boxes


def clip_boxes(boxes: Tensor, max_shape: Sequence[int]) -> Tensor:
    """Clip ``[N, 4]`` boxes to ``[0, W] x [0, H]`` (out of place)."""
    h, w = max_shape[:2]
    limit = boxes.new_tensor([w, h, w, h])
    return torch.minimum(boxes.clamp(min=0), limit)


class _RoiAlign(torch.autograd.Function):
    """Average RoI Align, ``aligned=True``, exported as ``RoiAlign``
    (opset 16, ``coordinate_transformation_mode='half_pixel'``)."""

    @staticmethod
    def forward(ctx, feat: Tensor, rois: Tensor, output_size: int,
                spatial_scale: float, sampling_ratio: int) -> Tensor:
        return torchvision.ops.roi_align(feat, rois, output_size,
                                         spatial_scale, sampling_ratio,
                                         aligned=True)

    @staticmethod
    def symbolic(g, feat, rois, output_size, spatial_scale, sampling_ratio):
        batch = g.op('Gather', rois,
                     g.op('Constant', value_t=torch.tensor(0)), axis_i=1)
        batch = g.op('Cast', batch, to_i=7)  # int64
        boxes = g.op('Slice', rois, g.op('Constant',
                                         value_t=torch.tensor([1])),
                     g.op('Constant', value_t=torch.tensor([5])),
                     g.op('Constant', value_t=torch.tensor([1])))
        return g.op('RoiAlign', feat, boxes, batch,
                    coordinate_transformation_mode_s='half_pixel',
                    mode_s='avg', output_height_i=output_size,
                    output_width_i=output_size,
                    sampling_ratio_i=sampling_ratio,
                    spatial_scale_f=spatial_scale)


def multilevel_roi_align(feats: Sequence[Tensor], rois: Tensor,
                         extractor) -> Tensor:
    """``SingleRoIExtractor`` forward with standard ``RoiAlign``.

    Every RoI is pooled from every level and the level chosen by
    ``extractor.map_roi_levels`` (box scale, ``finest_scale``) is kept with a
    ``Where``: identical to mmdet's per-level gather/scatter, at the price
    of ``num_levels`` RoiAligns over all RoIs (RoI features are small).

    Args:
        feats (Sequence[Tensor]): FPN levels, finest first.
        rois (Tensor): ``[N, 5]`` (batch index, x1, y1, x2, y2).
        extractor (SingleRoIExtractor): The model's extractor (its
            ``roi_layers`` give output size, sampling ratio and strides).

    Returns:
        Tensor: ``[N, C, S, S]`` pooled features.
    """
    num_levels = len(extractor.featmap_strides)
    scale = torch.sqrt((rois[:, 3] - rois[:, 1]) * (rois[:, 4] - rois[:, 2]))
    levels = torch.floor(torch.log2(scale / extractor.finest_scale + 1e-6))
    levels = levels.clamp(min=0, max=num_levels - 1)
    out = None
    for i in range(num_levels):
        layer = extractor.roi_layers[i]
        pooled = _RoiAlign.apply(feats[i], rois, int(layer.output_size[0]),
                                 float(layer.spatial_scale),
                                 int(layer.sampling_ratio))
        if out is None:
            out = torch.zeros_like(pooled)
        out = torch.where((levels == i)[:, None, None, None], pooled, out)
    return out


def paste_masks(masks: Tensor, boxes: Tensor, height: int,
                width: int) -> Tensor:
    """Paste ``[N, M, M]`` box-relative mask probabilities into the image.

    Equal to mmdet's ``_do_paste_mask`` (``grid_sample``, bilinear,
    ``align_corners=False``, zero padding): the sampling grid is separable,
    so the bilinear weights factor into a row matrix ``[N, H, M]`` and a
    column matrix ``[N, W, M]`` (tent functions) and the paste is two
    ``MatMul``s. Memory is ``N * H * W`` for the output plus
    ``N * (H + W) * M`` for the weights, instead of ``N * H * W * 2`` for a
    ``GridSample`` grid.

    Args:
        masks (Tensor): ``[N, M, M]`` probabilities (after sigmoid).
        boxes (Tensor): ``[N, 4]`` boxes in image coordinates.
        height (int): Image height.
        width (int): Image width.

    Returns:
        Tensor: ``[N, H, W]`` probabilities.
    """
    size = masks.shape[-1]
    x0, y0, x1, y1 = boxes.split(1, dim=1)
    wy = _tent_weights(height, y0, y1, size, masks.dtype)
    wx = _tent_weights(width, x0, x1, size, masks.dtype)
    return wy @ masks @ wx.transpose(1, 2)


def _tent_weights(length: int, lo: Tensor, hi: Tensor, size: int,
                  dtype: torch.dtype) -> Tensor:
    """Bilinear weights ``[N, length, size]`` of image pixels on a
    ``size``-cell mask spanning ``[lo, hi]`` (grid_sample,
    align_corners=False)."""
    pixels = torch.arange(length, dtype=dtype, device=lo.device) + 0.5
    pos = (pixels[None] - lo) / (hi - lo) * size - 0.5  # [N, length]
    cells = torch.arange(size, dtype=dtype, device=lo.device)
    return (1 - (pos[:, :, None] - cells).abs()).clamp(min=0)

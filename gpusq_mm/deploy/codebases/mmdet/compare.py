"""Detection parity: match reference and ONNX Runtime detections."""
from typing import Dict, Sequence

import numpy as np

BOX_IOU = 0.9
MASK_IOU = 0.9
TOP = 10


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix ``[len(a), len(b)]`` of ``x1, y1, x2, y2`` boxes."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:4], b[None, :, 2:4])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a = np.prod(a[:, 2:4] - a[:, :2], axis=1)
    area_b = np.prod(b[:, 2:4] - b[:, :2], axis=1)
    union = area_a[:, None] + area_b[None] - inter
    return inter / np.maximum(union, 1e-9)


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two binary masks (1.0 when both are empty)."""
    a, b = a.astype(bool), b.astype(bool)
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def compare_detections(ref: Sequence[np.ndarray], ort: Sequence[np.ndarray],
                       with_mask: bool, top: int = TOP,
                       min_match: float = 1.0) -> Dict:
    """Match the ``top`` best reference detections to ONNX detections.

    Each reference detection (by decreasing score) is matched greedily to
    the unused ONNX detection of the same label with the highest box IoU.

    Args:
        ref (Sequence[np.ndarray]): ``[dets, labels(, masks)]`` of PyTorch.
        ort (Sequence[np.ndarray]): The same from ONNX Runtime.
        with_mask (bool): Compare masks too.
        top (int): Number of reference detections checked. Defaults to 10.
        min_match (float): Fraction of the checked detections that must
            match. Defaults to 1.0 (all).

    Returns:
        dict: ``num_ref``, ``num_ort``, ``num_checked``, ``num_matched``,
        ``min_box_iou``, ``max_score_diff``, (``min_mask_iou``, over the
        matched pairs) and ``passed`` (at least ``min_match`` of the
        checked detections matched with box IoU >= 0.9, and their masks
        with IoU >= 0.9; when the reference has no detection, ONNX must
        have none either).
    """
    if not 0 < min_match <= 1:
        raise ValueError(f'min_match must be in (0, 1], got {min_match}')
    ref_dets, ref_labels = np.asarray(ref[0]), np.asarray(ref[1])
    ort_dets, ort_labels = np.asarray(ort[0]), np.asarray(ort[1])
    order = np.argsort(-ref_dets[:, 4], kind='stable')[:top]
    ious = box_iou(ref_dets[order], ort_dets) if len(ort_dets) else \
        np.zeros((len(order), 0))
    used = np.zeros(len(ort_dets), bool)
    box_ious, score_diffs, mask_ious = [], [], []
    for row, i in enumerate(order):
        cand = np.where((ort_labels == ref_labels[i]) & ~used)[0]
        if len(cand) == 0:
            box_ious.append(0.0)
            continue
        j = cand[np.argmax(ious[row, cand])]
        used[j] = True
        box_ious.append(float(ious[row, j]))
        score_diffs.append(abs(float(ref_dets[i, 4] - ort_dets[j, 4])))
        if with_mask and box_ious[-1] >= BOX_IOU:
            mask_ious.append(mask_iou(ref[2][i], ort[2][j]))
    result = dict(num_ref=len(ref_dets), num_ort=len(ort_dets),
                  num_checked=len(order),
                  num_matched=int(sum(v >= BOX_IOU for v in box_ious)),
                  min_box_iou=min(box_ious, default=1.0),
                  max_score_diff=max(score_diffs, default=0.0))
    passed = result['num_matched'] >= np.ceil(min_match * len(order) - 1e-9)
    if len(order) == 0:
        passed = len(ort_dets) == 0
    if with_mask:
        result['min_mask_iou'] = min(mask_ious, default=1.0)
        passed = passed and result['min_mask_iou'] >= MASK_IOU
    result['passed'] = bool(passed)
    return result

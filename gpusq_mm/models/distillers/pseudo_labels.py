"""Unsupervised mode: the teacher's predictions replace the ground truth.

- classification: teacher argmax → ``gt_label`` and, as a one-hot,
  ``gt_score`` (which mmpretrain's losses prefer, and which Mixup/CutMix in
  the data preprocessor already filled from the true labels);
- segmentation: teacher argmax map at the input size → ``gt_sem_seg``
  (taken through the segmentor's own inference, which every decode head
  implements);
- detection: teacher detections above ``score_thr`` (boxes, labels and, for
  instance segmentation, masks) → ``gt_instances``.
"""
from typing import List

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@torch.no_grad()
def pseudo_label(kind: str, teacher: nn.Module, inputs: Tensor,
                 data_samples: List, score_thr: float = 0.5) -> List:
    """Overwrite the ground truth of ``data_samples`` with teacher labels.

    Args:
        kind (str): ``LogitTaps.kind`` of the model.
        teacher (nn.Module): The teacher (eval mode).
        inputs (Tensor): Preprocessed batch.
        data_samples (list): The batch's data samples (modified in place).
        score_thr (float): Detection score threshold. Defaults to 0.5.

    Returns:
        list: ``data_samples``.
    """
    if kind == 'classifier':
        logits = teacher(inputs, data_samples, mode='tensor')
        labels = logits.argmax(dim=1)
        scores = F.one_hot(labels, logits.shape[1]).to(logits.dtype)
        for sample, label, score in zip(data_samples, labels, scores):
            sample.set_gt_label(int(label))
            if 'gt_score' in sample:  # batch augments wrote it
                sample.set_gt_score(score)
    elif kind == 'segmentor':
        from mmengine.structures import PixelData
        logits = teacher.encode_decode(inputs,
                                       [s.metainfo for s in data_samples])
        logits = F.interpolate(logits, size=inputs.shape[-2:],
                               mode='bilinear', align_corners=False)
        for sample, label in zip(data_samples, logits.argmax(dim=1)):
            sample.gt_sem_seg = PixelData(data=label[None].long())
    elif kind in ('two_stage', 'dense_det') or hasattr(teacher, 'bbox_head'):
        _detections_as_gt(teacher, inputs, data_samples, score_thr)
    else:
        raise ValueError(f'unsupervised distillation does not know how to '
                         f'pseudo-label a {type(teacher).__name__}')
    return data_samples


def _detections_as_gt(teacher: nn.Module, inputs: Tensor, data_samples: List,
                      score_thr: float) -> None:
    from mmdet.structures.mask import BitmapMasks
    from mmengine.structures import InstanceData
    results = teacher.predict(inputs, [s.clone() for s in data_samples],
                              rescale=False)
    for sample, result in zip(data_samples, results):
        pred = result.pred_instances
        keep = pred.scores > score_thr
        gt = InstanceData(bboxes=pred.bboxes[keep].detach(),
                          labels=pred.labels[keep].detach())
        if 'masks' in pred:
            masks = pred.masks[keep].detach().cpu().numpy().astype('uint8')
            h, w = sample.batch_input_shape
            if not len(masks):
                masks = masks.reshape(0, h, w)
            gt.masks = BitmapMasks(masks, *masks.shape[-2:])
        sample.gt_instances = gt
        sample.ignored_instances = InstanceData(
            bboxes=pred.bboxes.new_zeros((0, 4)),
            labels=pred.labels.new_zeros((0, )))

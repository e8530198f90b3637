"""Where each task model's classification logits are taken for soft KD.

No graph tracing: the logits are the outputs of known modules, recorded with
forward hooks.

- classifier (mmpretrain ``ImageClassifier``): the last ``nn.Linear`` of
  ``head`` (class scores).
- segmentor (mmseg ``EncoderDecoder``), per-pixel class scores (KL per
  pixel), by decode head:

  - heads with ``conv_seg`` (FCN, UPerNet, SegFormer, ...): its output;
  - transformer mask heads (Segmenter's ``SegmenterMaskTransformerHead``):
    the normalised class-embedding x patch products, ``mask_norm``'s
    output ``(B, HW, K)``;
  - mask-classification heads (MaskFormer, Mask2Former): the last decoder
    layer's class probabilities x mask probabilities summed over queries,
    ``softmax(cls)[..., :-1] · sigmoid(mask)``, as their own inference
    builds the segmentation; KL of the per-pixel class distribution these
    scores give (their log as logits);
- two-stage detector (mmdet ``roi_head`` + ``rpn_head``): ``rpn_head.rpn_cls``
  (objectness of the same anchors, sigmoid) and the RoI classification
  scores, with the teacher's RoI head run on the *student's* sampled
  proposals so that both score the same boxes.
- one-stage anchor detector (``bbox_head.retina_cls`` / ``conv_cls`` /
  ``atss_cls`` ...): the dense classification convs (sigmoid).
- anything else (e.g. DETR-family query heads, whose queries differ between
  models): no logit term; the feature terms still apply.
"""
from contextlib import ExitStack, contextmanager
from typing import Dict, Iterator, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gpusq_mm.models.losses import kl_logits
from gpusq_mm.models.recorder import record_outputs

DENSE_CLS_NAMES = ('retina_cls', 'conv_cls', 'atss_cls', 'gfl_cls',
                   'fcos_cls')


def _last_linear(module: nn.Module) -> Optional[str]:
    names = [n for n, m in module.named_modules() if isinstance(m, nn.Linear)]
    return names[-1] if names else None


class LogitTaps:
    """Find and compare the logits of a student/teacher pair.

    Args:
        model (nn.Module): The student (same architecture as the teacher).
    """

    def __init__(self, model: nn.Module) -> None:
        self.seg_head, seg_path = seg_head_tap(model)
        self.kind, self.paths, self.sigmoid = self._locate(model, seg_path)

    @staticmethod
    def _locate(model: nn.Module,
                seg_path: Optional[str]) -> Tuple[str, List[str], List[bool]]:
        if hasattr(model, 'roi_head') and hasattr(model, 'rpn_head'):
            return 'two_stage', ['rpn_head.rpn_cls'], [True]
        if seg_path is not None:
            return 'segmentor', [seg_path], [False]
        head = getattr(model, 'head', None)
        if isinstance(head, nn.Module) and _last_linear(head):
            return 'classifier', [f'head.{_last_linear(head)}'], [False]
        bbox_head = getattr(model, 'bbox_head', None)
        for name in DENSE_CLS_NAMES:
            if isinstance(getattr(bbox_head, name, None), nn.Module):
                return 'dense_det', [f'bbox_head.{name}'], [True]
        return 'none', [], []

    @contextmanager
    def record(self, model: nn.Module, roi: bool) -> Iterator[dict]:
        """Record the logits of ``model`` (and, for two-stage detectors with
        ``roi=True``, the RoIs and RoI class scores of its RoI head)."""
        with_roi = self.kind == 'two_stage' and roi
        paths = self.paths + (['roi_head.bbox_head'] if with_roi else [])
        with ExitStack() as stack:
            records = stack.enter_context(record_outputs(model, paths))
            if with_roi:
                rois: List[Tensor] = []
                records['_rois'] = rois

                def keep_rois(_module, args):
                    rois.append(args[1])

                handle = model.roi_head.bbox_roi_extractor.\
                    register_forward_pre_hook(keep_rois)
                stack.callback(handle.remove)
            yield records

    def run_teacher(self, teacher: nn.Module, inputs: Tensor,
                    data_samples) -> None:
        """One teacher forward that fires the recording hooks.

        Segmentors run through their own inference (``encode_decode``):
        ``mode='tensor'`` does not pass the data samples that
        mask-classification heads' ``forward`` takes, and cascades
        (PointRend) do not support it."""
        if self.kind == 'segmentor':
            teacher.encode_decode(inputs, [s.metainfo for s in data_samples])
        else:
            teacher(inputs, data_samples, mode='tensor')

    def logits(self, record, path: str) -> Tuple[List[Tensor], int]:
        """Recorded output -> (logit tensors, class dim)."""
        if self.seg_head == 'mask_classification':
            return [mask_classification_logits(*record)], 1
        if self.seg_head == 'mask_transformer':
            return [record], -1
        return _levels(record), 1

    def losses(self, s_rec: dict, t_rec: dict, teacher: nn.Module,
               t_neck, tau: float) -> Dict[str, Tensor]:
        """KL terms between recorded student and teacher logits."""
        out = {}
        for path, sigmoid in zip(self.paths, self.sigmoid):
            s_levels, dim = self.logits(s_rec[path], path)
            t_levels, _ = self.logits(t_rec[path], path)
            name = path.replace('.', '_')
            out[name] = torch.stack([
                kl_logits(s, t, tau, dim=dim, sigmoid=sigmoid)
                for s, t in zip(s_levels, t_levels)
            ]).mean()
        if self.kind == 'two_stage' and s_rec.get('_rois'):
            out['roi_cls'] = self._roi_kl(s_rec, teacher, t_neck, tau)
        return out

    @staticmethod
    @torch.no_grad()
    def _teacher_roi_scores(teacher: nn.Module, t_neck, rois: Tensor):
        roi_head = teacher.roi_head
        feats = roi_head.bbox_roi_extractor(
            t_neck[:roi_head.bbox_roi_extractor.num_inputs], rois)
        if getattr(roi_head, 'with_shared_head', False):
            feats = roi_head.shared_head(feats)
        return roi_head.bbox_head(feats)[0]

    def _roi_kl(self, s_rec: dict, teacher: nn.Module, t_neck,
                tau: float) -> Tensor:
        rois = s_rec['_rois'][0]
        s_scores = s_rec['roi_head.bbox_head'][0]
        t_scores = self._teacher_roi_scores(teacher, t_neck, rois.detach())
        return kl_logits(s_scores, t_scores, tau, dim=-1)


def seg_head_tap(model: nn.Module) -> Tuple[Optional[str], Optional[str]]:
    """Where a segmentor's per-pixel class scores are recorded.

    Returns:
        tuple: ``(kind, path)``: ``kind`` is 'conv_seg' (the head's, or for
        heads that wrap other heads, K-Net's kernel-generating head and
        cascades' first head, the first ``conv_seg`` below it),
        'mask_transformer' or 'mask_classification'; ``(None, None)`` for a
        model without ``decode_head`` or a depth estimator.

    Raises:
        ValueError: A decode head of a kind not known here (none of
            mmseg's registered heads).
    """
    head = getattr(model, 'decode_head', None)
    if not isinstance(head, nn.Module) or type(model).__name__ == \
            'DepthEstimator':
        return None, None  # depth regression has no class scores
    if isinstance(getattr(head, 'mask_norm', None), nn.Module) and \
            hasattr(head, 'cls_emb'):
        return 'mask_transformer', 'decode_head.mask_norm'
    if hasattr(head, 'cls_embed') and hasattr(head, 'mask_embed'):
        return 'mask_classification', 'decode_head'
    for name, module in head.named_modules():
        if name.split('.')[-1] == 'conv_seg' and isinstance(module,
                                                            nn.Conv2d):
            return 'conv_seg', f'decode_head.{name}' if name else \
                'decode_head'
    raise ValueError(
        f'MixedKDDistiller: decode head {type(head).__name__} has no '
        'conv_seg, no Segmenter-style mask_norm and no MaskFormer-style '
        'cls_embed/mask_embed, so its per-pixel class scores cannot be '
        'found; set distill=dict(logits=False) to distil features only')


def mask_classification_logits(cls_scores: List[Tensor],
                               mask_preds: List[Tensor],
                               eps: float = 1e-6) -> Tensor:
    """Per-pixel class log-scores of a mask-classification head's last
    decoder layer: ``log Σ_q softmax(cls_q)[c] · sigmoid(mask_q)``
    ``(B, K, H, W)`` (the no-object class dropped, as in its inference)."""
    probs = F.softmax(cls_scores[-1].float(), dim=-1)[..., :-1]
    masks = mask_preds[-1].float().sigmoid()
    scores = torch.einsum('bqc,bqhw->bchw', probs, masks)
    return torch.log(scores + eps)


def _levels(output) -> List[Tensor]:
    if isinstance(output, Tensor):
        return [output]
    out: List[Tensor] = []
    for item in output:
        out.extend(_levels(item))
    return out

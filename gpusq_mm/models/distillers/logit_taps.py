"""Where each task model's classification logits are taken for soft KD.

No graph tracing: the logits are the outputs of known modules, recorded with
forward hooks.

- classifier (mmpretrain ``ImageClassifier``): the last ``nn.Linear`` of
  ``head`` (class scores).
- segmentor (mmseg ``EncoderDecoder``): ``decode_head.conv_seg``, per-pixel
  class scores (KL per pixel).
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
        self.kind, self.paths, self.sigmoid = self._locate(model)

    @staticmethod
    def _locate(model: nn.Module) -> Tuple[str, List[str], List[bool]]:
        if hasattr(model, 'roi_head') and hasattr(model, 'rpn_head'):
            return 'two_stage', ['rpn_head.rpn_cls'], [True]
        if hasattr(model, 'decode_head'):
            return 'segmentor', ['decode_head.conv_seg'], [False]
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

    def losses(self, s_rec: dict, t_rec: dict, teacher: nn.Module,
               t_neck, tau: float) -> Dict[str, Tensor]:
        """KL terms between recorded student and teacher logits."""
        out = {}
        for path, sigmoid in zip(self.paths, self.sigmoid):
            s_levels, t_levels = _levels(s_rec[path]), _levels(t_rec[path])
            name = path.replace('.', '_')
            out[name] = torch.stack([
                kl_logits(s, t, tau, dim=1, sigmoid=sigmoid)
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


def _levels(output) -> List[Tensor]:
    if isinstance(output, Tensor):
        return [output]
    out: List[Tensor] = []
    for item in output:
        out.extend(_levels(item))
    return out

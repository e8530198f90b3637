"""mmdet codebase of the deploy tool: end-to-end detector export in
standard ONNX operators, image loading and PyTorch/ONNX Runtime parity.

Supported (checked by :meth:`MMDetExporter.check_supported`):

- two-stage: ``RPNHead`` + ``StandardRoIHead`` with a softmax
  ``ConvFCBBoxHead`` (e.g. ``Shared2FCBBoxHead``), ``SingleRoIExtractor``
  over ``RoIAlign`` and, for instance segmentation, ``FCNMaskHead``
  (Faster/Mask R-CNN, any backbone/neck);
- one-stage: ``RetinaHead``;
- DETR family (best effort, boxes only): ``DINO`` and ``DeformableDETR``
  (plain or two-stage/box-refine) with a sigmoid classifier: backbone,
  neck, deformable encoder/decoder (mmcv's PyTorch deformable attention,
  ``GridSample``) and mmdet's top-k decoding. Not covered: DETR and
  Conditional/DAB-DETR (softmax or other heads), DINO's denoising queries
  (training only), masks.

Boxes use ``DeltaXYWHBBoxCoder`` and plain ``nms``. See
:mod:`.models` for the graph and :mod:`.ops` for the operators.

The graph takes one image at the static ``onnx_config.input_shape``
(zero-padded bottom/right by :meth:`MMDetExporter.load_image`) and returns
``dets [N, 5]`` (x1, y1, x2, y2, score; input pixels, before rescaling to
the original image), ``labels [N]`` int64 and, for instance segmentation,
``masks [N, H, W]`` uint8 at full input resolution (pasted with two
``MatMul``s of bilinear weights; exactly mmdet's ``grid_sample`` paste;
memory ``N*H*W`` bytes, 107 MB for 100 masks at 800x1344 — the price of
returning image masks instead of 28x28 box masks). Boxes are clipped to
the input (mmdet clips to the unpadded image and the DETR padding mask
covers the unpadded image): both agree exactly when the resized image fills
the input, otherwise detections near the padding may differ.
"""
import copy
import os.path as osp
from contextlib import contextmanager
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.config import Config, ConfigDict
from torch import Tensor, nn

from gpusq_mm.utils.model import get_student

from ..base import BaseExporter, UnsupportedModelError, inference_steps
from .compare import compare_detections
from .models import DETRExport, SingleStageExport, TwoStageExport

TASKS = ('ObjectDetection', 'InstanceSegmentation')
SUPPORTED = {
    'two-stage (Faster/Mask R-CNN)':
    'RPNHead + StandardRoIHead(ConvFCBBoxHead/Shared2FCBBoxHead, '
    'SingleRoIExtractor with RoIAlign, FCNMaskHead)',
    'one-stage': 'RetinaHead',
    'DETR family (boxes only)': 'DINO, DeformableDETR',
}
# deploy post_processing key -> key of mmdet's final-stage test_cfg
_POST_KEYS = {'score_threshold': 'score_thr', 'keep_top_k': 'max_per_img',
              'mask_thr_binary': 'mask_thr_binary',
              'mask_threshold': 'mask_thr_binary'}


class MMDetExporter(BaseExporter):
    """Exports an mmdet detector end to end (pre-processed image in,
    detections out) with standard ONNX operators.

    Args:
        model_cfg (Config): The model's config (its test pipeline, data
            preprocessor and test_cfg are used).
        deploy_cfg (Config): Deploy config: ``onnx_config.input_shape``
            ``[W, H]`` (static) and ``codebase_config`` with ``task``
            ('ObjectDetection' or 'InstanceSegmentation') and
            ``post_processing`` (``score_threshold``, ``iou_threshold``,
            ``pre_top_k``, ``keep_top_k``, ``max_output_boxes_per_class``,
            ``mask_thr_binary``). Given values override the model's final
            test_cfg, in the export and in :meth:`pytorch_outputs` alike.

    Note:
        ``max_output_boxes_per_class`` is accepted for mmdeploy
        compatibility but has no effect: per-class NMS runs as one NMS over
        class-offset boxes (as mmcv's ``batched_nms``), capped at
        ``keep_top_k``. ``pre_top_k`` caps the candidates of the final NMS;
        mmdet has no such cap, so results differ only when more candidates
        pass the score threshold. ``iou_threshold`` applies to the final
        NMS; the RPN keeps its own ``test_cfg.rpn``.

    Examples:
        >>> exporter = MMDetExporter(model_cfg, deploy_cfg)
        >>> exporter.check_supported(model)
        >>> inputs, meta = exporter.load_image('demo.jpg')
        >>> module = exporter.export_module(model)
        >>> torch.onnx.export(module, (inputs, ), 'end2end.onnx',
        ...                   dynamo=False, opset_version=17,
        ...                   output_names=exporter.output_names)
    """
    scope = 'mmdet'

    def __init__(self, model_cfg: Config, deploy_cfg: Config) -> None:
        super().__init__(model_cfg, deploy_cfg)
        codebase = deploy_cfg.get('codebase_config', {})
        self.task = codebase.get('task', 'ObjectDetection')
        if self.task not in TASKS:
            raise ValueError(f'codebase_config.task={self.task!r} is not an '
                             f'mmdet task; use one of {TASKS}')
        self.post = dict(codebase.get('post_processing', {}) or {})
        self.min_match = float(
            (codebase.get('parity', {}) or {}).get('min_match', 1.0))
        shape = deploy_cfg.get('onnx_config', {}).get('input_shape')
        self.input_hw: Optional[Tuple[int, int]] = (
            (int(shape[1]), int(shape[0])) if shape else None)
        self._preprocessor = None

    @property
    def output_names(self) -> List[str]:
        """``['dets', 'labels']`` (+ ``'masks'`` for instance seg)."""
        names = ['dets', 'labels']
        return names + ['masks'] if self.with_mask else names

    @property
    def with_mask(self) -> bool:
        return self.task == 'InstanceSegmentation'

    # ------------------------------------------------------------ inputs
    def load_image(self, path: str) -> Tuple[Tensor, Dict]:
        """Load ``path`` through the model's test pipeline and data
        preprocessor, zero-padded (bottom/right) to the static input shape.

        Returns:
            tuple: ``inputs [1, 3, H, W]`` and a meta dict with
            ``data_samples`` (for the PyTorch reference), ``img_shape``,
            ``ori_shape``, ``scale_factor`` and ``input_shape`` (H, W).
        """
        from mmcv.transforms import Compose
        from mmdet.registry import TRANSFORMS
        from mmengine.dataset import pseudo_collate
        from mmengine.registry import DefaultScope
        if not osp.isfile(path):
            raise FileNotFoundError(f'image {path!r} does not exist')
        steps = inference_steps(self.model_cfg)
        # registries build in the default scope: make it mmdet's whatever
        # the process set before (a seg or cls model built earlier)
        with DefaultScope.overwrite_default_scope('mmdet'):
            pipeline = Compose([TRANSFORMS.build(copy.deepcopy(t))
                                for t in steps])
        try:
            data = pipeline(dict(img_path=path, img_id=0))
        except Exception as err:
            raise ValueError(f'cannot read image {path!r} with the test '
                             f'pipeline: {err}') from err
        if data is None:
            raise ValueError(f'the test pipeline dropped image {path!r}')
        with torch.no_grad():
            batch = self._get_preprocessor()(pseudo_collate([data]), False)
        inputs, samples = batch['inputs'], batch['data_samples']
        inputs = self._pad_static(inputs, path)
        hw = tuple(inputs.shape[-2:])
        for sample in samples:
            sample.set_metainfo(dict(batch_input_shape=hw, pad_shape=hw))
        info = samples[0].metainfo
        meta = dict(data_samples=samples, input_shape=hw,
                    **{k: info.get(k) for k in ('img_shape', 'ori_shape',
                                                'scale_factor')})
        return inputs, meta

    def _get_preprocessor(self) -> nn.Module:
        if self._preprocessor is None:
            from mmdet.registry import MODELS
            model = self.model_cfg.model
            cfg = model.get('data_preprocessor') or model.get(
                'architecture', {}).get('data_preprocessor')
            if cfg is None:
                raise ValueError('the model config has no data_preprocessor '
                                 '(model.data_preprocessor)')
            from mmengine.registry import DefaultScope
            with DefaultScope.overwrite_default_scope('mmdet'):
                self._preprocessor = MODELS.build(copy.deepcopy(cfg)).eval()
        return self._preprocessor

    def _pad_static(self, inputs: Tensor, path: str) -> Tensor:
        h, w = inputs.shape[-2:]
        if self.input_hw is None:
            self.input_hw = (int(h), int(w))
        target_h, target_w = self.input_hw
        if h > target_h or w > target_w:
            raise ValueError(
                f'image {path!r} is {w}x{h} (WxH) after the test pipeline, '
                f'larger than onnx_config.input_shape {[target_w, target_h]}'
                '; raise input_shape or lower the Resize scale')
        return F.pad(inputs, (0, target_w - w, 0, target_h - h))

    # ------------------------------------------------------------ model
    def check_supported(self, model: nn.Module) -> None:
        """Raise :class:`UnsupportedModelError` naming the first module the
        exporter cannot convert and listing what is supported."""
        self._kind(get_student(model))

    def _kind(self, model: nn.Module) -> str:
        from .support import detector_kind
        try:
            return detector_kind(model, self.with_mask)
        except UnsupportedModelError as err:
            listing = '; '.join(f'{k}: {v}' for k, v in SUPPORTED.items())
            raise UnsupportedModelError(
                f'{err}. Supported by the mmdet exporter: {listing}') from None

    def export_module(self, model: nn.Module) -> nn.Module:
        """Wrap ``model`` (eval mode) in a traceable module
        ``forward(inputs) -> (dets, labels[, masks])``.

        Note:
            The wrapper calls the model's own ``extract_feat`` and heads, so
            whatever modules they hold are traced. gpusq_mm's fake-quantized
            layers trace too, but as float ``Div/Round/Clip/Mul`` (their
            straight-through ``autograd.Function`` has no ``symbolic``), not
            ``QuantizeLinear/DequantizeLinear``: convert them to Q/DQ first.
        """
        model = get_student(model).eval()
        kind = self._kind(model)
        if self.input_hw is None:
            raise ValueError('onnx_config.input_shape [W, H] is not set and '
                             'no image was loaded: the export needs a static '
                             'input shape')
        pre_top_k = int(self.post.get('pre_top_k', -1))
        with self._final_cfg(model) as cfg:
            cfg = copy.deepcopy(cfg)
        if kind == 'two_stage':
            return TwoStageExport(model, self.input_hw, cfg, pre_top_k,
                                  self.with_mask)
        if kind == 'one_stage':
            return SingleStageExport(model, self.input_hw, cfg, pre_top_k)
        return DETRExport(model, self.input_hw, cfg, pre_top_k)

    @contextmanager
    def _final_cfg(self, model: nn.Module) -> Iterator[ConfigDict]:
        """The final stage's test_cfg with the deploy overrides applied,
        installed on the model while the context is open."""
        owner = (model.roi_head if hasattr(model, 'roi_head') else
                 model.bbox_head)
        original = owner.test_cfg
        cfg = copy.deepcopy(original)
        for key, value in self.post.items():
            if key == 'iou_threshold' and 'nms' in cfg:
                cfg['nms']['iou_threshold'] = value
            elif key in _POST_KEYS:
                cfg[_POST_KEYS[key]] = value
        owner.test_cfg = cfg
        try:
            yield cfg
        finally:
            owner.test_cfg = original

    # ------------------------------------------------------------ parity
    @torch.no_grad()
    def pytorch_outputs(self, model: nn.Module, inputs: Tensor,
                        meta: Dict) -> List[np.ndarray]:
        """The real mmdet ``predict`` (``rescale=False``) in the exported
        format: ``[dets [N, 5], labels [N]]`` (+ ``masks [N, H, W]`` uint8,
        zero-padded to the input shape)."""
        model = get_student(model).eval()
        samples = copy.deepcopy(meta['data_samples'])
        with self._final_cfg(model):
            result = model.predict(inputs, samples, rescale=False)[0]
        pred = result.pred_instances
        dets = torch.cat([pred.bboxes, pred.scores[:, None]], dim=1)
        outputs = [dets.float().cpu().numpy(),
                   pred.labels.cpu().numpy().astype(np.int64)]
        if self.with_mask:
            masks = pred.masks.to(torch.uint8)
            h, w = inputs.shape[-2:]
            masks = F.pad(masks, (0, w - masks.shape[-1],
                                  0, h - masks.shape[-2]))
            outputs.append(masks.cpu().numpy())
        return outputs

    def compare(self, ref: Sequence[np.ndarray],
                ort: Sequence[np.ndarray]) -> Dict:
        """Parity of ONNX Runtime outputs with :meth:`pytorch_outputs`.

        Of the top ``min(10, len(ref))`` reference detections, the fraction
        ``codebase_config.parity.min_match`` (default 1.0: all) must match
        an ONNX detection of the same label with box IoU >= 0.9 and, for
        masks, mask IoU >= 0.9. See :func:`.compare.compare_detections`
        for the returned keys (``'passed'`` among them).
        """
        return compare_detections(ref, ort, with_mask=self.with_mask,
                                  min_match=self.min_match)

"""Which mmdet detectors :mod:`.models` can export, and why not."""
from torch import nn


def _name(module: object) -> str:
    return type(module).__name__


def _fail(where: str, module: object, why: str = 'is not supported'):
    from ..base import UnsupportedModelError
    raise UnsupportedModelError(f'{where} ({_name(module)}) {why}')


def _check_coder_nms(where: str, head: nn.Module, cfg) -> None:
    from mmdet.models.task_modules.coders import DeltaXYWHBBoxCoder
    if type(head.bbox_coder) is not DeltaXYWHBBoxCoder:
        _fail(f'{where}.bbox_coder', head.bbox_coder,
              'is not supported (only DeltaXYWHBBoxCoder)')
    nms = (cfg or {}).get('nms') or {}
    if nms.get('type', 'nms') != 'nms' or nms.get('class_agnostic', False):
        _fail(f'{where}.test_cfg.nms={dict(nms)}', head,
              'is not supported (only type="nms", per class)')


def _check_extractor(where: str, extractor: nn.Module) -> None:
    from mmcv.ops import RoIAlign
    from mmdet.models.roi_heads.roi_extractors import SingleRoIExtractor
    if type(extractor) is not SingleRoIExtractor:
        _fail(where, extractor)
    layer = extractor.roi_layers[0]
    if not (isinstance(layer, RoIAlign) and layer.aligned
            and layer.pool_mode == 'avg'):
        _fail(f'{where}.roi_layers', layer,
              'is not supported (only RoIAlign, aligned=True, avg)')


def _two_stage(model: nn.Module, with_mask: bool) -> str:
    from mmdet.models.dense_heads import RPNHead
    from mmdet.models.roi_heads import StandardRoIHead
    from mmdet.models.roi_heads.bbox_heads import ConvFCBBoxHead
    from mmdet.models.roi_heads.mask_heads import FCNMaskHead
    rpn, roi = model.rpn_head, model.roi_head
    if type(rpn) is not RPNHead:
        _fail('rpn_head', rpn)
    _check_coder_nms('rpn_head', rpn, rpn.test_cfg)
    if type(roi) is not StandardRoIHead or roi.with_shared_head:
        _fail('roi_head', roi, 'is not supported (only StandardRoIHead '
              'without shared head)')
    head = roi.bbox_head
    if not isinstance(head, ConvFCBBoxHead) or head.custom_cls_channels \
            or getattr(head.loss_cls, 'use_sigmoid', False):
        _fail('roi_head.bbox_head', head, 'is not supported (only '
              'ConvFCBBoxHead/Shared2FCBBoxHead with softmax scores)')
    _check_coder_nms('roi_head.bbox_head', head, roi.test_cfg)
    _check_extractor('roi_head.bbox_roi_extractor', roi.bbox_roi_extractor)
    if with_mask:
        if not roi.with_mask:
            _fail('roi_head', roi, 'has no mask head: export the task '
                  'ObjectDetection instead of InstanceSegmentation')
        if type(roi.mask_head) is not FCNMaskHead:
            _fail('roi_head.mask_head', roi.mask_head)
        if not roi.share_roi_extractor:
            _check_extractor('roi_head.mask_roi_extractor',
                             roi.mask_roi_extractor)
    return 'two_stage'


def detector_kind(model: nn.Module, with_mask: bool) -> str:
    """``'two_stage'``, ``'one_stage'`` or ``'detr'`` for a supported
    detector; raises ``UnsupportedModelError`` naming the module that is
    not supported otherwise."""
    from mmdet.models.dense_heads import RetinaHead
    from mmdet.models.detectors import (DINO, DeformableDETR,
                                        SingleStageDetector, TwoStageDetector)
    if isinstance(model, TwoStageDetector):
        return _two_stage(model, with_mask)
    if with_mask:
        _fail('model', model, 'has no mask head; InstanceSegmentation is '
              'supported for Mask R-CNN (StandardRoIHead + FCNMaskHead)')
    if type(model) in (DINO, DeformableDETR):
        if not model.bbox_head.loss_cls.use_sigmoid:
            _fail('bbox_head', model.bbox_head, 'with softmax scores is not '
                  'supported')
        return 'detr'
    if isinstance(model, SingleStageDetector):
        head = model.bbox_head
        if type(head) is not RetinaHead:
            _fail('bbox_head', head)
        _check_coder_nms('bbox_head', head, head.test_cfg)
        return 'one_stage'
    _fail('model', model)

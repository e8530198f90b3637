# GPUSQ on the tiny Swin Mask R-CNN: phase S (epochs 0-5) then phase Q
# (epochs 6-11), distilling from the dense model of
# mask-rcnn_swin-tiny_fpn_12e_synthetic-coco.py (set teacher_ckpt to its
# checkpoint); the same hook stack and KD defaults as the full configs
# (configs/gpusq/).
# Old name (an alias of this file): mask_rcnn_swin_tiny_gpusq.py.
_base_ = ['./mask-rcnn_swin-tiny_fpn_12e_synthetic-coco.py',
          '../../_base_/gpusq/gpusq_det.py']
model = dict(_delete_=True, type='MixedKDDistiller', distill=_base_.kd_cfg,
             architecture=_base_.model, teacher=_base_.model,
             teacher_ckpt=None)

# GPUSQ-ViT on Mask R-CNN Swin-T, COCO (mmdet) - the headline config.
# Student and teacher are mmdet's Mask R-CNN Swin-T 1x; both start from its
# model-zoo checkpoint (box AP 42.7, mask AP 39.3): the teacher stays dense
# and frozen, the student is pruned to 2:4 (phase S, epochs 0-5) and then
# INT8 QAT-trained with the masks kept (phase Q, epochs 6-11), with mixed
# KD throughout.
# Old name (an alias of this file): mask_rcnn_swin.py.
_base_ = ['mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py',
          '../_base_/gpusq/gpusq_det_12e.py']
model = dict(_delete_=True, type='MixedKDDistiller', distill=_base_.kd_cfg,
             architecture=_base_.model, teacher=_base_.model,
             teacher_ckpt='https://download.openmmlab.com/mmdetection/v2.0/swin/mask_rcnn_swin-t-p4-w7_fpn_1x_coco/mask_rcnn_swin-t-p4-w7_fpn_1x_coco_20210902_120937-9d6b7cfa.pth')  # noqa
train_cfg = _base_.gpusq_train_cfg
param_scheduler = _base_.gpusq_param_scheduler

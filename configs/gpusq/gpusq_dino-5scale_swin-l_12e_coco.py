# GPUSQ-ViT on DINO (DETR family) with a Swin-L backbone, COCO (mmdet).
# Teacher and student start from mmdet's DINO-5scale Swin-L 12e checkpoint
# (box AP 57.2); phase S epochs 0-5, phase Q epochs 6-11.
# Old name (an alias of this file): dino_swin_l.py.
_base_ = ['mmdet::dino/dino-5scale_swin-l_8xb2-12e_coco.py',
          '../_base_/gpusq/gpusq_det_12e.py']
# DETR-family queries differ between the models: no logit term, the
# distiller keeps the backbone + neck feature terms
model = dict(_delete_=True, type='MixedKDDistiller', distill=_base_.kd_cfg,
             architecture=_base_.model, teacher=_base_.model,
             teacher_ckpt='https://download.openmmlab.com/mmdetection/v3.0/dino/dino-5scale_swin-l_8xb2-12e_coco/dino-5scale_swin-l_8xb2-12e_coco_20230228_072924-a654145f.pth')  # noqa
train_cfg = _base_.gpusq_train_cfg
param_scheduler = _base_.gpusq_param_scheduler

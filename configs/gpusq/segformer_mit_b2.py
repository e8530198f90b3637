# GPUSQ-ViT on SegFormer MiT-B2 (a ViT-style hierarchical encoder), ADE20K
# 512x512 (mmseg). Teacher and student start from mmseg's model-zoo
# checkpoint (mIoU 45.58); phase S iterations 0-19999, phase Q 20000-39999.
_base_ = ['mmseg::segformer/segformer_mit-b2_8xb2-160k_ade20k-512x512.py',
          '../_base_/gpusq/schedule_seg_40k.py',
          '../_base_/gpusq/kd_segmentation.py']
model = dict(
    _delete_=True,
    type='MixedKDDistiller',
    architecture=_base_.model,
    teacher=_base_.model,
    teacher_ckpt='https://download.openmmlab.com/mmsegmentation/v0.5/segformer/segformer_mit-b2_512x512_160k_ade20k/segformer_mit-b2_512x512_160k_ade20k_20210726_112103-cbd414ac.pth',  # noqa
    distill=_base_.kd_cfg)
train_cfg = _base_.gpusq_train_cfg
param_scheduler = _base_.gpusq_param_scheduler
default_hooks = _base_.gpusq_default_hooks

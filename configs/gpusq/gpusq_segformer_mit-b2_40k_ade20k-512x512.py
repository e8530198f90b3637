# GPUSQ-ViT on SegFormer MiT-B2 (a ViT-style hierarchical encoder), ADE20K
# 512x512 (mmseg). Teacher and student start from mmseg's model-zoo
# checkpoint (mIoU 45.58); phase S iterations 0-19999, phase Q 20000-39999.
# Old name (an alias of this file): segformer_mit_b2.py.
_base_ = ['mmseg::segformer/segformer_mit-b2_8xb2-160k_ade20k-512x512.py',
          '../_base_/gpusq/gpusq_seg_40k.py']
model = dict(_delete_=True, type='MixedKDDistiller', distill=_base_.kd_cfg,
             architecture=_base_.model, teacher=_base_.model,
             teacher_ckpt='https://download.openmmlab.com/mmsegmentation/v0.5/segformer/segformer_mit-b2_512x512_160k_ade20k/segformer_mit-b2_512x512_160k_ade20k_20210726_112103-cbd414ac.pth')  # noqa
train_cfg = _base_.gpusq_train_cfg
param_scheduler = _base_.gpusq_param_scheduler
default_hooks = _base_.gpusq_default_hooks

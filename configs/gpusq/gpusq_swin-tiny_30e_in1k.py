# GPUSQ-ViT on Swin-T, ImageNet-1k 224 (mmpretrain). Teacher and student
# start from mmpretrain's model-zoo checkpoint (top-1 81.18); phase S
# epochs 0-14, phase Q epochs 15-29.
# Old name (an alias of this file): swin_tiny.py.
_base_ = ['mmpretrain::swin_transformer/swin-tiny_16xb64_in1k.py',
          '../_base_/gpusq/gpusq_cls_30e.py']
model = dict(_delete_=True, type='MixedKDDistiller', distill=_base_.kd_cfg,
             architecture=_base_.model, teacher=_base_.model,
             teacher_ckpt='https://download.openmmlab.com/mmclassification/v0/swin-transformer/swin_tiny_224_b16x64_300e_imagenet_20210616_090925-66df6be6.pth')  # noqa
train_cfg = _base_.gpusq_train_cfg
optim_wrapper = _base_.gpusq_optim_wrapper
param_scheduler = _base_.gpusq_param_scheduler

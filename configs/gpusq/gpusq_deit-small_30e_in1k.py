# GPUSQ-ViT on DeiT-S, ImageNet-1k 224 (mmpretrain). Teacher and student
# start from mmpretrain's model-zoo checkpoint (top-1 80.69); phase S
# epochs 0-14, phase Q epochs 15-29.
# Old name (an alias of this file): deit_small.py.
_base_ = ['mmpretrain::deit/deit-small_4xb256_in1k.py',
          '../_base_/gpusq/gpusq_cls_30e.py']
model = dict(_delete_=True, type='MixedKDDistiller', distill=_base_.kd_cfg,
             architecture=_base_.model, teacher=_base_.model,
             teacher_ckpt='https://download.openmmlab.com/mmclassification/v0/deit/deit-small_pt-4xb256_in1k_20220218-9425b9bb.pth')  # noqa
train_cfg = _base_.gpusq_train_cfg
optim_wrapper = _base_.gpusq_optim_wrapper
param_scheduler = _base_.gpusq_param_scheduler

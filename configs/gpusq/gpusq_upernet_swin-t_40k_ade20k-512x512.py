# GPUSQ-ViT on UPerNet Swin-T, ADE20K 512x512 (mmseg). Teacher and student
# start from mmseg's model-zoo checkpoint (mIoU 44.41); phase S iterations
# 0-19999, phase Q 20000-39999.
# Old name (an alias of this file): upernet_swin.py.
_base_ = ['mmseg::swin/swin-tiny-patch4-window7-in1k-pre_upernet_8xb2-160k_ade20k-512x512.py',  # noqa
          '../_base_/gpusq/gpusq_seg_40k.py']
model = dict(_delete_=True, type='MixedKDDistiller', distill=_base_.kd_cfg,
             architecture=_base_.model, teacher=_base_.model,
             teacher_ckpt='https://download.openmmlab.com/mmsegmentation/v0.5/swin/upernet_swin_tiny_patch4_window7_512x512_160k_ade20k_pretrain_224x224_1K/upernet_swin_tiny_patch4_window7_512x512_160k_ade20k_pretrain_224x224_1K_20210531_112542-e380ad3e.pth')  # noqa
train_cfg = _base_.gpusq_train_cfg
param_scheduler = _base_.gpusq_param_scheduler
default_hooks = _base_.gpusq_default_hooks

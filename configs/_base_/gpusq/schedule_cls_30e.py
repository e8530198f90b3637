# Two-phase GPUSQ fine-tuning for mmpretrain classifiers, epoch-based: 30
# epochs from the dense weights (a tenth of the 300-epoch ImageNet recipe),
# phase S (2:4 + KD) then phase Q (INT8 QAT + KD), at a fine-tuning LR of
# 1e-4 (total batch 1024; auto_scale_lr rescales it). Per-phase LR policy
# (chosen): one warm-up epoch, cosine to 1 % of the LR over phase S, then
# QAT from 1 % cosine-decayed to 0.01 %. A leaf uses it with
#   train_cfg = _base_.gpusq_train_cfg
#   optim_wrapper = _base_.gpusq_optim_wrapper
#   param_scheduler = _base_.gpusq_param_scheduler
_base_ = ['./sparse24_qat_kd.py']
gpusq_max_epochs = 30
gpusq_q_epoch = int(gpusq_max_epochs * _base_.gpusq_phase_q)
gpusq_train_cfg = dict(by_epoch=True, max_epochs=gpusq_max_epochs,
                       val_interval=5)
gpusq_optim_wrapper = dict(optimizer=dict(lr=1e-4))
gpusq_param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0, end=1,
         convert_to_iter_based=True),
    # phase S
    dict(type='CosineAnnealingLR', T_max=gpusq_q_epoch, eta_min_ratio=0.01,
         by_epoch=True, begin=0, end=gpusq_q_epoch,
         convert_to_iter_based=True),
    # phase Q
    dict(type='CosineAnnealingLR', T_max=gpusq_max_epochs - gpusq_q_epoch,
         eta_min_ratio=1e-4, by_epoch=True, begin=gpusq_q_epoch,
         end=gpusq_max_epochs, convert_to_iter_based=True),
]

# Two-phase GPUSQ fine-tuning for mmseg segmentors, iteration-based: 40k
# iterations from the dense weights (a quarter of ADE20K's 160k), phase S
# (2:4 + KD) then phase Q (INT8 QAT + KD). Per-phase LR policy (chosen):
# linear warm-up, cosine to 1 % of the LR over phase S, then QAT from 1 %
# cosine-decayed to 0.01 %. A leaf uses it with
#   train_cfg = _base_.gpusq_train_cfg
#   param_scheduler = _base_.gpusq_param_scheduler
#   default_hooks = _base_.gpusq_default_hooks
_base_ = ['./sparse24_qat_kd_iter.py']
gpusq_max_iters = 40000
gpusq_q_iter = int(gpusq_max_iters * _base_.gpusq_phase_q)
gpusq_train_cfg = dict(type='IterBasedTrainLoop', max_iters=gpusq_max_iters,
                       val_interval=4000)
gpusq_default_hooks = dict(
    checkpoint=dict(by_epoch=False, interval=4000, max_keep_ckpts=3))
gpusq_param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0,
         end=1000),
    # phase S
    dict(type='CosineAnnealingLR', T_max=gpusq_q_iter, eta_min_ratio=0.01,
         by_epoch=False, begin=0, end=gpusq_q_iter),
    # phase Q
    dict(type='CosineAnnealingLR', T_max=gpusq_max_iters - gpusq_q_iter,
         eta_min_ratio=1e-4, by_epoch=False, begin=gpusq_q_iter,
         end=gpusq_max_iters),
]

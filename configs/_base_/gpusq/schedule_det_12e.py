# Two-phase GPUSQ fine-tuning for mmdet detectors, epoch-based: 12 epochs
# from the dense weights, phase S (2:4 + KD) then phase Q (INT8 QAT + KD).
# Per-phase LR policy (chosen; the paper gives no schedule): linear warm-up,
# cosine from the fine-tuning LR to 1 % of it over phase S, then QAT from
# 1 % cosine-decayed to 0.01 % (NVIDIA's QAT guidance: ~1 % of the initial
# LR, cosine). A leaf uses it with
#   train_cfg = _base_.gpusq_train_cfg
#   param_scheduler = _base_.gpusq_param_scheduler
_base_ = ['./sparse24_qat_kd.py']
gpusq_max_epochs = 12
gpusq_q_epoch = int(gpusq_max_epochs * _base_.gpusq_phase_q)
gpusq_train_cfg = dict(type='EpochBasedTrainLoop',
                       max_epochs=gpusq_max_epochs,
                       val_interval=gpusq_q_epoch)
gpusq_param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0,
         end=500),
    # phase S
    dict(type='CosineAnnealingLR', T_max=gpusq_q_epoch, eta_min_ratio=0.01,
         by_epoch=True, begin=0, end=gpusq_q_epoch,
         convert_to_iter_based=True),
    # phase Q
    dict(type='CosineAnnealingLR', T_max=gpusq_max_epochs - gpusq_q_epoch,
         eta_min_ratio=1e-4, by_epoch=True, begin=gpusq_q_epoch,
         end=gpusq_max_epochs, convert_to_iter_based=True),
]

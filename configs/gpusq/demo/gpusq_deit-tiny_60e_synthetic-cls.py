# GPUSQ on the tiny DeiT: phase S (epochs 0-14), phase Q (15-29); the
# same hook stack and KD defaults as the full configs (configs/gpusq/).
# Old name (an alias of this file): deit_tiny_gpusq.py.
_base_ = ['./deit-tiny_60e_synthetic-cls.py',
          '../../_base_/gpusq/gpusq_cls.py']
model = dict(_delete_=True, type='MixedKDDistiller', distill=_base_.kd_cfg,
             architecture=_base_.model, teacher=_base_.model,
             teacher_ckpt=None)

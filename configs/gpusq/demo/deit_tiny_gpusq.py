# GPUSQ on the tiny DeiT: phase S (epochs 0-14), phase Q (15-29); the
# same hook stack and KD defaults as the full configs (configs/gpusq/).
_base_ = ['./deit_tiny_dense.py', '../../_base_/gpusq/sparse24_qat_kd.py',
          '../../_base_/gpusq/kd_classification.py']
model = dict(
    _delete_=True,
    type='MixedKDDistiller',
    architecture=_base_.model,
    teacher=_base_.model,
    teacher_ckpt=None,
    distill=_base_.kd_cfg)

# GPUSQ on the tiny SegFormer: phase S (iters 0-99), phase Q (100-199); the
# same hook stack and KD defaults as the full configs (configs/gpusq/).
_base_ = ['./segformer_tiny_dense.py',
          '../../_base_/gpusq/sparse24_qat_kd_iter.py',
          '../../_base_/gpusq/kd_segmentation.py']
model = dict(
    _delete_=True,
    type='MixedKDDistiller',
    architecture=_base_.model,
    teacher=_base_.model,
    teacher_ckpt=None,
    distill=_base_.kd_cfg)

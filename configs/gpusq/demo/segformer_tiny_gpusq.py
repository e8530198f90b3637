# GPUSQ on the tiny SegFormer: phase S (iters 0-99), phase Q (100-199).
_base_ = ['./segformer_tiny_dense.py',
          '../../_base_/gpusq/sparse24_qat_kd.py',
          '../../_base_/gpusq/kd_segmentation.py']
model = dict(
    _delete_=True,
    type='MixedKDDistiller',
    architecture=_base_.model,
    teacher=_base_.model,
    teacher_ckpt=None,
    distill=_base_.kd_cfg)
custom_hooks = [
    dict(type='Sparse24Hook', method='magnitude', exclude=[r'patch_embed']),
    dict(type='QATHook', start_iter=100, calib_batches=2),
]

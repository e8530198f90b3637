# GPUSQ on the tiny Swin Mask R-CNN: phase S (epochs 0-5) then phase Q
# (epochs 6-11), distilling from the dense model of
# mask_rcnn_swin_tiny_dense.py (set teacher_ckpt to its checkpoint); the
# same hook stack and KD defaults as the full configs (configs/gpusq/).
_base_ = ['./mask_rcnn_swin_tiny_dense.py',
          '../../_base_/gpusq/sparse24_qat_kd.py',
          '../../_base_/gpusq/kd_detection.py']
model = dict(
    _delete_=True,
    type='MixedKDDistiller',
    architecture=_base_.model,
    teacher=_base_.model,
    teacher_ckpt=None,
    distill=_base_.kd_cfg)

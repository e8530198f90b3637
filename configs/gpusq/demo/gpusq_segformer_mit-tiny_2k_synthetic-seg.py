# GPUSQ on the tiny SegFormer: phase S (iters 0-99), phase Q (100-199); the
# same hook stack and KD defaults as the full configs (configs/gpusq/).
# Old name (an alias of this file): segformer_tiny_gpusq.py.
_base_ = ['./segformer_mit-tiny_2k_synthetic-seg.py',
          '../../_base_/gpusq/gpusq_seg.py']
model = dict(_delete_=True, type='MixedKDDistiller', distill=_base_.kd_cfg,
             architecture=_base_.model, teacher=_base_.model,
             teacher_ckpt=None)

"""Helpers of the reliability tests: an iteration-based, deterministic
variant of the tiny Mask R-CNN Swin GPUSQ demo config, and checkpoint
comparisons."""
import os.path as osp
from typing import Dict, Sequence

import torch

from tests.utils import DEMO_CONFIGS

GPUSQ_DEMO = osp.join(DEMO_CONFIGS, 'mask_rcnn_swin_tiny_gpusq.py')

_TEMPLATE = '''_base_ = [{base!r}]
custom_imports = dict(
    imports=['gpusq_mm', 'tests.test_reliability.probe_hooks'],
    allow_failed_imports=False)
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop',
                 max_iters={max_iters}, val_interval=100000)
val_cfg = None
val_dataloader = None
val_evaluator = None
param_scheduler = [dict(type='LinearLR', start_factor=0.1, by_epoch=False,
                        begin=0, end={max_iters})]
randomness = dict(seed=0, deterministic=True)
default_hooks = dict(checkpoint=dict(by_epoch=False, interval={interval},
                                     max_keep_ckpts=-1))
log_processor = dict(by_epoch=False)
custom_hooks = [
    # scope='all': necks and heads too, the most layers to keep identical
    dict(type='Sparse24Hook', method='magnitude', exclude=[r'patch_embed'],
         scope='all'),
    dict(type='QATHook', start_iter={qat_start}, calib_batches=2,
         scope='all'),
    dict(type='RNGStateHook'),
] + {extra!r}
'''


def write_config(directory: str, max_iters: int, qat_start: int,
                 extra_hooks: Sequence[str] = ('KillSwitchHook',
                                               'LossRecorderHook'),
                 interval: int = 1) -> str:
    """Write the test config to ``directory/gpusq_iter.py``; return it."""
    path = osp.join(directory, 'gpusq_iter.py')
    with open(path, 'w') as f:
        f.write(_TEMPLATE.format(
            base=GPUSQ_DEMO, max_iters=max_iters, qat_start=qat_start,
            interval=interval,
            extra=[dict(type=name) for name in extra_hooks]))
    return path


def masks_and_amax(ckpt: dict) -> Dict[str, Dict[str, torch.Tensor]]:
    """The 2:4 masks and quantizer ranges of a GPUSQ checkpoint."""
    return dict(
        masks=dict(ckpt.get('gpusq_sparse24', {}).get('masks', {})),
        amax={k: v for k, v in ckpt['state_dict'].items()
              if k.endswith(('input_quantizer.amax',
                             'weight_quantizer.amax'))})

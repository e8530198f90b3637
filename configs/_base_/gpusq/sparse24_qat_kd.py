# GPUSQ hook stack for epoch-based schedules: phase S (2:4 masks from the
# first iteration, trained with KD), then phase Q (INT8 QAT + KD, masks
# kept) from `gpusq_phase_q` of the schedule. The start is a fraction,
# resolved against max_epochs when training starts, so it follows
# `--cfg-options train_cfg.max_epochs=N`; an int (`--cfg-options
# custom_hooks.1.start_epoch=6`) is an absolute epoch. Iteration-based
# schedules use sparse24_qat_kd_iter.py.
custom_imports = dict(imports=['gpusq_mm'], allow_failed_imports=False)
# chosen (the paper gives no schedule): phase S and phase Q take one half
# each of the fine-tuning schedule
gpusq_phase_q = 0.5
# the paper's scope: the backbone's blocks (patch embeddings and patch
# merging stay dense and float); 'backbone+neck' or 'all' for more
gpusq_sparse24_hook = dict(type='Sparse24Hook', method='magnitude',
                           scope='backbone')
# calib_samples=None: 512 training samples for classifiers, 64 for
# detectors/segmentors, a seeded random subset through the test pipeline
gpusq_qat_hook = dict(type='QATHook', calib_samples=None, calibrator='max',
                      scope='backbone')
# generator states in every checkpoint: --resume continues the exact random
# stream (keep it when a leaf config overrides custom_hooks)
gpusq_rng_hook = dict(type='RNGStateHook')
custom_hooks = [
    gpusq_sparse24_hook,
    dict(**gpusq_qat_hook, start_epoch=gpusq_phase_q),
    gpusq_rng_hook,
]

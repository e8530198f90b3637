# GPUSQ hook stack: phase S (2:4 masks from the first iteration, with KD),
# then phase Q (INT8 QAT + KD, masks kept). Leaf configs set the start of
# phase Q for their schedule by overriding `custom_hooks`.
custom_imports = dict(imports=['gpusq_mm'], allow_failed_imports=False)
custom_hooks = [
    dict(type='Sparse24Hook', method='magnitude', exclude=[r'patch_embed']),
    dict(type='QATHook', calib_batches=4, calibrator='max'),
    # generator states in every checkpoint: --resume continues the exact
    # random stream (keep it when a leaf config overrides custom_hooks)
    dict(type='RNGStateHook'),
]

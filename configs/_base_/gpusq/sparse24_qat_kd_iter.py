# GPUSQ hook stack for iteration-based schedules (IterBasedTrainLoop): the
# hooks of sparse24_qat_kd.py, phase Q from the fraction `gpusq_phase_q` of
# max_iters (`--cfg-options custom_hooks.1.start_iter=N` for an absolute
# iteration).
_base_ = ['./sparse24_qat_kd.py']
custom_hooks = [
    _base_.gpusq_sparse24_hook,
    dict(**_base_.gpusq_qat_hook, start_iter=_base_.gpusq_phase_q),
    _base_.gpusq_rng_hook,
]

# Everything GPUSQ adds to an mmpretrain config, for classifiers: the hook
# stack and two-phase schedule of schedule_cls_30e.py (a leaf assigns its
# gpusq_* variables) and the distiller's kd_cfg of kd_classification.py.
_base_ = ['./schedule_cls_30e.py', './kd_classification.py']

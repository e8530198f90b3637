# Everything GPUSQ adds to an mmdet config, for detectors: the hook stack and
# two-phase schedule of schedule_det_12e.py (a leaf assigns its gpusq_*
# variables) and the distiller's kd_cfg of kd_detection.py.
_base_ = ['./schedule_det_12e.py', './kd_detection.py']

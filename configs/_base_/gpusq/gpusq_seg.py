# The hook stack of sparse24_qat_kd_iter.py and the distiller's kd_cfg of
# kd_segmentation.py for mmseg segmentors, keeping the task config's own
# schedule (phase Q from half of it); gpusq_seg_*.py add a two-phase
# fine-tuning schedule.
_base_ = ['./sparse24_qat_kd_iter.py', './kd_segmentation.py']

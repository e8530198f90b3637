# Everything GPUSQ adds to an mmseg config, for segmentors: the hook stack
# and two-phase schedule of schedule_seg_40k.py (a leaf assigns its gpusq_*
# variables) and the distiller's kd_cfg of kd_segmentation.py.
_base_ = ['./schedule_seg_40k.py', './kd_segmentation.py']

# Alias (the old name, kept so that existing commands and scripts work)
# of the config's OpenMMLab name below.
_base_ = './gpusq_mask-rcnn_swin-tiny_fpn_12e_synthetic-coco.py'

# Alias (the old name, kept so that existing commands and scripts work)
# of the config's OpenMMLab name below.
_base_ = './retinanet_swin-tiny_fpn_12e_synthetic-coco.py'

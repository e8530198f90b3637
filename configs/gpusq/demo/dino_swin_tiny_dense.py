# Alias (the old name, kept so that existing commands and scripts work)
# of the config's OpenMMLab name below.
_base_ = './dino_swin-tiny_12e_synthetic-coco.py'

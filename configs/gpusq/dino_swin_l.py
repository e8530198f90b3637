# Alias (the old name, kept so that existing commands and scripts work)
# of the config's OpenMMLab name below.
_base_ = './gpusq_dino-5scale_swin-l_12e_coco.py'

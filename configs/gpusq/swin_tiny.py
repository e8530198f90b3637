# Alias (the old name, kept so that existing commands and scripts work)
# of the config's OpenMMLab name below.
_base_ = './gpusq_swin-tiny_30e_in1k.py'

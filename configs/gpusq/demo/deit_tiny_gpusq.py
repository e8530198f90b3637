# Alias (the old name, kept so that existing commands and scripts work)
# of the config's OpenMMLab name below.
_base_ = './gpusq_deit-tiny_60e_synthetic-cls.py'

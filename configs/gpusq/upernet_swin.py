# Alias (the old name, kept so that existing commands and scripts work)
# of the config's OpenMMLab name below.
_base_ = './gpusq_upernet_swin-t_40k_ade20k-512x512.py'

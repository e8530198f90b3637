# Alias (the old name, kept so that existing commands and scripts work)
# of the config's OpenMMLab name below.
_base_ = './gpusq_segformer_mit-tiny_2k_synthetic-seg.py'

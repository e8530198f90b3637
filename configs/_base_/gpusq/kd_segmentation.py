# MixedKDDistiller defaults for mmseg segmentors: pixel CE (α=1), per-pixel
# class KL of the decode head (β=10), one feature term per critical backbone
# level (γ=5; 'auto': stages 3 and 4 of Swin/MiT/PVT/Twins, the last third
# of a plain ViT's blocks), φ frozen at phase Q (inverse); phase-Q teacher =
# the sparse float model after phase S (the paper's M_SF).
kd_cfg = dict(hard_weight=1.0, soft_weight=10.0, feature_weight=5.0, tau=1.0,
              features='auto', phi='inverse', stage2_teacher='sparse')

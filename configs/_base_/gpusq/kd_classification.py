# MixedKDDistiller defaults for mmpretrain classifiers: hard labels (α=1),
# class-logit KL (β=10), one feature term per critical layer (γ=5; 'auto':
# ViT/DeiT the last third of the blocks, Swin stages 3 and 4), imitated only
# on samples where teacher and student agree; φ frozen at phase Q (inverse);
# phase-Q teacher = the sparse float model after phase S (the paper's M_SF).
kd_cfg = dict(hard_weight=1.0, soft_weight=10.0, feature_weight=5.0, tau=1.0,
              features='auto', feature_gating='auto', phi='inverse',
              stage2_teacher='sparse')

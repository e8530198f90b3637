# MixedKDDistiller defaults for mmdet detectors: detection losses (α=1),
# RPN objectness and per-RoI class KL on the student's proposals (β=10), one
# feature term per critical backbone level (γ=5; 'auto': Swin stages 3 and
# 4; add the neck with features=['auto', 'neck']), φ frozen at phase Q
# (inverse); phase-Q teacher = the sparse float model after phase S (M_SF).
kd_cfg = dict(hard_weight=1.0, soft_weight=10.0, feature_weight=5.0, tau=1.0,
              features='auto', phi='inverse', stage2_teacher='sparse')

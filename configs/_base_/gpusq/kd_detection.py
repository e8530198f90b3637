# MixedKDDistiller defaults for mmdet detectors: detection losses (α=1),
# RPN objectness and per-RoI class KL on the student's proposals (β=10),
# backbone and FPN features (γ=5), φ frozen at phase Q (inverse).
kd_cfg = dict(hard_weight=1.0, soft_weight=10.0, feature_weight=5.0, tau=1.0,
              features=['backbone', 'neck'], phi='inverse')

# MixedKDDistiller defaults for mmseg segmentors: pixel CE (α=1), per-pixel
# class KL of the decode head (β=10), backbone features (γ=5), φ frozen at
# phase Q (inverse).
kd_cfg = dict(hard_weight=1.0, soft_weight=10.0, feature_weight=5.0, tau=1.0,
              features=['backbone'], phi='inverse')

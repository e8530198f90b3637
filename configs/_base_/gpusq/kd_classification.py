# MixedKDDistiller defaults for mmpretrain classifiers: hard labels (α=1),
# class-logit KL (β=10), backbone features (γ=5), imitated only on samples
# where teacher and student agree; φ frozen at phase Q (inverse).
kd_cfg = dict(hard_weight=1.0, soft_weight=10.0, feature_weight=5.0, tau=1.0,
              features=['backbone'], feature_gating='auto', phi='inverse')

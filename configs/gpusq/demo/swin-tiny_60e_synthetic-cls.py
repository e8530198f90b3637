# A tiny Swin classifier (mmpretrain SwinTransformer, 64 px, window 4) on
# the synthetic ImageNet-style set; data and schedule from
# deit-tiny_60e_synthetic-cls.py.
# Old name (an alias of this file): swin_tiny_cls_dense.py.
_base_ = ['./deit-tiny_60e_synthetic-cls.py']

model = dict(
    _delete_=True,
    type='ImageClassifier',
    backbone=dict(
        type='SwinTransformer',
        arch=dict(embed_dims=32, depths=[1, 1, 2, 1],
                  num_heads=[1, 2, 4, 8]),
        img_size=64, window_size=4, pad_small_map=True,
        drop_path_rate=0.0),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead', num_classes=5, in_channels=256,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0)),
    init_cfg=[
        dict(type='TruncNormal', layer='Linear', std=0.02, bias=0.),
        dict(type='Constant', layer='LayerNorm', val=1., bias=0.)
    ])

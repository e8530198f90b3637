# A tiny UPerNet Swin (mmseg's Swin + UPerHead + FCN auxiliary head, narrow
# and shallow) on the synthetic segmentation set; data and schedule come
# from segformer_mit-tiny_2k_synthetic-seg.py.
# Old name (an alias of this file): upernet_swin_tiny_dense.py.
_base_ = ['./segformer_mit-tiny_2k_synthetic-seg.py']

norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    _delete_=True,
    type='EncoderDecoder',
    data_preprocessor=_base_.data_preprocessor,
    backbone=dict(
        type='SwinTransformer', pretrain_img_size=64, embed_dims=32,
        patch_size=4, window_size=4, mlp_ratio=4, depths=[1, 1, 2, 1],
        num_heads=[1, 2, 4, 8], strides=(4, 2, 2, 2),
        out_indices=(0, 1, 2, 3), qkv_bias=True, drop_path_rate=0.0,
        use_abs_pos_embed=False, act_cfg=dict(type='GELU'),
        norm_cfg=dict(type='LN', requires_grad=True)),
    decode_head=dict(
        type='UPerHead', in_channels=[32, 64, 128, 256],
        in_index=[0, 1, 2, 3], pool_scales=(1, 2, 3, 6), channels=64,
        dropout_ratio=0.1, num_classes=6, norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False,
                         loss_weight=1.0)),
    auxiliary_head=dict(
        type='FCNHead', in_channels=128, in_index=2, channels=64,
        num_convs=1, concat_input=False, dropout_ratio=0.1, num_classes=6,
        norm_cfg=norm_cfg, align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False,
                         loss_weight=0.4)),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))

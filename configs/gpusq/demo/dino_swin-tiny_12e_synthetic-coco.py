# A tiny DINO (DETR family: deformable encoder, denoising decoder) with a
# tiny Swin backbone on the synthetic COCO set; data, schedule, data
# preprocessor and backbone from _base_/synthetic_coco.py.
# Old name (an alias of this file): dino_swin_tiny_dense.py.
_base_ = ['./_base_/synthetic_coco.py']

# DINO's decoder hard-codes 128 position features per box coordinate
embed_dims = 256
model = dict(
    _delete_=True,
    type='DINO',
    num_queries=30,
    with_box_refine=True,
    as_two_stage=True,
    data_preprocessor=dict(_base_.det_data_preprocessor, pad_size_divisor=1),
    backbone=_base_.tiny_swin,
    neck=dict(
        type='ChannelMapper', in_channels=[64, 128, 256], kernel_size=1,
        out_channels=embed_dims, act_cfg=None,
        norm_cfg=dict(type='GN', num_groups=32), num_outs=4),
    encoder=dict(
        num_layers=1,
        layer_cfg=dict(
            self_attn_cfg=dict(embed_dims=embed_dims, num_heads=8,
                               num_levels=4, dropout=0.0),
            ffn_cfg=dict(embed_dims=embed_dims, feedforward_channels=256,
                         ffn_drop=0.0))),
    decoder=dict(
        num_layers=2,
        return_intermediate=True,
        layer_cfg=dict(
            self_attn_cfg=dict(embed_dims=embed_dims, num_heads=8,
                               dropout=0.0),
            cross_attn_cfg=dict(embed_dims=embed_dims, num_heads=8,
                                num_levels=4, dropout=0.0),
            ffn_cfg=dict(embed_dims=embed_dims, feedforward_channels=256,
                         ffn_drop=0.0)),
        post_norm_cfg=None),
    positional_encoding=dict(num_feats=embed_dims // 2, normalize=True,
                             offset=0.0, temperature=20),
    bbox_head=dict(
        type='DINOHead', num_classes=5, embed_dims=embed_dims,
        sync_cls_avg_factor=True,
        loss_cls=dict(type='FocalLoss', use_sigmoid=True, gamma=2.0,
                      alpha=0.25, loss_weight=1.0),
        loss_bbox=dict(type='L1Loss', loss_weight=5.0),
        loss_iou=dict(type='GIoULoss', loss_weight=2.0)),
    dn_cfg=dict(label_noise_scale=0.5, box_noise_scale=1.0,
                group_cfg=dict(dynamic=True, num_groups=None,
                               num_dn_queries=10)),
    train_cfg=dict(
        assigner=dict(
            type='HungarianAssigner',
            match_costs=[
                dict(type='FocalLossCost', weight=2.0),
                dict(type='BBoxL1Cost', weight=5.0, box_format='xywh'),
                dict(type='IoUCost', iou_mode='giou', weight=2.0)
            ])),
    test_cfg=dict(max_per_img=30))
optim_wrapper = dict(clip_grad=dict(max_norm=0.1, norm_type=2))

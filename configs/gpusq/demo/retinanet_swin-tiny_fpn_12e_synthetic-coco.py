# A tiny RetinaNet (one-stage, anchor-based, sigmoid focal loss) with a tiny
# Swin backbone on the synthetic COCO set; data, schedule, data
# preprocessor and backbone from _base_/synthetic_coco.py.
# Old name (an alias of this file): retinanet_swin_tiny_dense.py.
_base_ = ['./_base_/synthetic_coco.py']

model = dict(
    _delete_=True,
    type='RetinaNet',
    data_preprocessor=_base_.det_data_preprocessor,
    backbone=_base_.tiny_swin,
    neck=dict(
        type='FPN', in_channels=[64, 128, 256], out_channels=64,
        start_level=0, add_extra_convs='on_input', num_outs=5),
    bbox_head=dict(
        type='RetinaHead', num_classes=5, in_channels=64, stacked_convs=2,
        feat_channels=64,
        anchor_generator=dict(
            type='AnchorGenerator', octave_base_scale=4,
            scales_per_octave=3, ratios=[0.5, 1.0, 2.0],
            strides=[8, 16, 32, 64, 128]),
        bbox_coder=dict(
            type='DeltaXYWHBBoxCoder', target_means=[.0, .0, .0, .0],
            target_stds=[1.0, 1.0, 1.0, 1.0]),
        loss_cls=dict(type='FocalLoss', use_sigmoid=True, gamma=2.0,
                      alpha=0.25, loss_weight=1.0),
        loss_bbox=dict(type='L1Loss', loss_weight=1.0)),
    train_cfg=dict(
        assigner=dict(type='MaxIoUAssigner', pos_iou_thr=0.5,
                      neg_iou_thr=0.4, min_pos_iou=0, ignore_iof_thr=-1),
        sampler=dict(type='PseudoSampler'), allowed_border=-1,
        pos_weight=-1, debug=False),
    test_cfg=dict(nms_pre=1000, min_bbox_size=0, score_thr=0.05,
                  nms=dict(type='nms', iou_threshold=0.5), max_per_img=100))

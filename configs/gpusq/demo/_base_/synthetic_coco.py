# The synthetic COCO set of `python tools/misc/make_demo_data.py` for the
# tiny demo detectors: box-only pipelines (Mask R-CNN adds the masks), the
# loaders and COCO evaluator, and the 12-epoch CPU schedule. The task
# config underneath supplies the dataset type, sampler and runtime; every
# detector replaces its model.
_base_ = 'mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py'

data_root = 'data/demo/coco/'
metainfo = dict(classes=('square', 'disc', 'triangle', 'star', 'cross'))
num_classes = 5  # gpusq_mm.datasets.CLASSES
img_scale = (160, 128)
# the data preprocessor and tiny Swin backbone (3 levels) of the RetinaNet
# and DINO demo models
det_data_preprocessor = dict(
    type='DetDataPreprocessor', mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375], bgr_to_rgb=True, pad_size_divisor=32)
tiny_swin = dict(
    type='SwinTransformer', embed_dims=32, depths=[1, 1, 2, 1],
    num_heads=[1, 2, 4, 8], window_size=4, mlp_ratio=4, qkv_bias=True,
    drop_path_rate=0.0, patch_norm=True, out_indices=(1, 2, 3),
    with_cp=False, convert_weights=False, init_cfg=None)

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                    'scale_factor'))
]
train_dataloader = dict(
    batch_size=4, num_workers=0, persistent_workers=False,
    batch_sampler=None,
    dataset=dict(
        data_root=data_root, metainfo=metainfo,
        ann_file='annotations/instances_train.json',
        data_prefix=dict(img='train/'),
        filter_cfg=dict(filter_empty_gt=True, min_size=4),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1, num_workers=0, persistent_workers=False,
    dataset=dict(
        data_root=data_root, metainfo=metainfo,
        ann_file='annotations/instances_val.json',
        data_prefix=dict(img='val/'), pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val.json',
                     metric='bbox')
test_evaluator = val_evaluator

max_epochs = 12
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0,
         end=20),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True,
         milestones=[8, 11], gamma=0.1)
]
optim_wrapper = dict(optimizer=dict(lr=2e-4))
default_hooks = dict(
    logger=dict(interval=1),
    checkpoint=dict(interval=max_epochs, max_keep_ckpts=2))
env_cfg = dict(dist_cfg=dict(backend='gloo'))

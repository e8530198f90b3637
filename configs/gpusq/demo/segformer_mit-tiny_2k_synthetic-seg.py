# A tiny SegFormer (MiT-B0 depths with MiT-B1 widths, narrow decode head) on
# the synthetic segmentation set of `python tools/misc/make_demo_data.py`.
# The B1 widths (64/128/320/512) give GEMMs large enough for ONNX Runtime's
# int8 kernels to beat FP32 on 2 CPU cores; at B0 widths (32/.../256) the
# quantize/dequantize steps cost as much as the int8 GEMMs save.
# Old name (an alias of this file): segformer_tiny_dense.py.
_base_ = 'mmseg::segformer/segformer_mit-b0_8xb2-160k_ade20k-512x512.py'

data_root = 'data/demo/seg/'
# background + gpusq_mm.datasets.CLASSES
metainfo = dict(classes=('background', 'square', 'disc', 'triangle', 'star',
                         'cross'),
                palette=[[0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255],
                         [255, 255, 0], [0, 255, 255]])
crop_size = (64, 64)
data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
    backbone=dict(init_cfg=None, embed_dims=64, num_heads=[1, 2, 5, 8]),
    decode_head=dict(in_channels=[64, 128, 320, 512], channels=64,
                     num_classes=6))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='RandomResize', scale=(64, 64), ratio_range=(0.75, 1.25),
         keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(64, 64), keep_ratio=True),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs')
]
dataset = dict(type='BaseSegDataset', data_root=data_root, metainfo=metainfo,
               img_suffix='.jpg', seg_map_suffix='.png',
               reduce_zero_label=False)
train_dataloader = dict(
    batch_size=8, num_workers=0, persistent_workers=False,
    dataset=dict(
        _delete_=True, **dataset,
        data_prefix=dict(img_path='img_dir/train',
                         seg_map_path='ann_dir/train'),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1, num_workers=0, persistent_workers=False,
    dataset=dict(
        _delete_=True, **dataset,
        data_prefix=dict(img_path='img_dir/val', seg_map_path='ann_dir/val'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader

max_iters = 2000
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters,
                 val_interval=max_iters)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0,
         end=50),
    dict(type='PolyLR', eta_min=0.0, power=1.0, begin=50, end=max_iters,
         by_epoch=False)
]
optim_wrapper = dict(optimizer=dict(lr=6e-4))
default_hooks = dict(
    logger=dict(interval=1),
    checkpoint=dict(by_epoch=False, interval=max_iters, max_keep_ckpts=2))
env_cfg = dict(dist_cfg=dict(backend='gloo'))

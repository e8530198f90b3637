"""Write the tiny data sets under ``tests/data`` that the GPUSQ configs are
smoke-tested on, in the real data sets' layouts (deterministic).

- ``coco/``: COCO instances (boxes + polygon masks), ``train2017/``,
  ``val2017/``, ``annotations/instances_{train,val}2017.json`` listing all
  80 COCO categories with their ids; the five shapes are labelled person,
  bicycle, car, motorcycle and airplane (ids 1-5), so the 80-class
  ``CocoDataset`` and ``CocoMetric`` of the mmdet configs use them
  unchanged.
- ``ade/``: the ``ADE20KDataset`` layout, ``images/{training,validation}``
  (.jpg) and ``annotations/{training,validation}`` (.png) where 0 is
  "other" (ignored by ``reduce_zero_label``) and 1..5 are classes.
- ``imagenet/``: ``train/<class>/*.jpg``, ``val/*.jpg`` and
  ``meta/{train,val}.txt`` ("path label"), the ``ImageNet`` dataset layout.

Usage::

    python tests/data/make_tiny_data.py [OUT]   # default: tests/data
"""
import json
import os
import os.path as osp
import shutil
import sys
import tempfile

from mmdet.datasets import CocoDataset

from gpusq_mm.datasets import make_cls, make_coco, make_seg

HERE = osp.dirname(osp.abspath(__file__))
# COCO's category ids (1..90 with gaps), in mmdet's class order
COCO_IDS = [i for i in range(1, 91) if i not in
            (12, 26, 29, 30, 45, 66, 68, 69, 71, 83)]


def make_tiny_coco(root: str) -> str:
    """COCO layout with 3 training and 2 validation images (128x160)."""
    make_coco(root, num_train=3, num_val=2, size=(128, 160), seed=0)
    for split in ('train', 'val'):
        os.replace(osp.join(root, split), osp.join(root, f'{split}2017'))
        src = osp.join(root, 'annotations', f'instances_{split}.json')
        with open(src) as f:
            ann = json.load(f)
        ann['categories'] = [dict(id=i, name=name) for i, name in
                             zip(COCO_IDS, CocoDataset.METAINFO['classes'])]
        with open(osp.join(root, 'annotations',
                           f'instances_{split}2017.json'), 'w') as f:
            json.dump(ann, f)
        os.remove(src)
    return root


def make_tiny_ade(root: str) -> str:
    """ADE20K layout with 3 training and 2 validation images (128x128)."""
    with tempfile.TemporaryDirectory() as tmp:
        make_seg(tmp, num_train=3, num_val=2, size=(128, 128), seed=1)
        for split, ade in (('train', 'training'), ('val', 'validation')):
            for src, dst in (('img_dir', 'images'),
                             ('ann_dir', 'annotations')):
                os.makedirs(osp.join(root, dst), exist_ok=True)
                shutil.move(osp.join(tmp, src, split),
                            osp.join(root, dst, ade))
    return root


def make_tiny_imagenet(root: str) -> str:
    """ImageNet layout with 6 training and 3 validation images (64x64)."""
    with tempfile.TemporaryDirectory() as tmp:
        make_cls(tmp, num_train=6, num_val=3, size=(64, 64), seed=2)
        os.makedirs(osp.join(root, 'meta'), exist_ok=True)
        os.makedirs(osp.join(root, 'val'), exist_ok=True)
        lines = {'train': [], 'val': []}
        classes = sorted(os.listdir(osp.join(tmp, 'train')))
        for label, name in enumerate(classes):
            for split in ('train', 'val'):
                folder = osp.join(tmp, split, name)
                for file in sorted(os.listdir(folder)):
                    if split == 'train':
                        rel = f'{name}/{file}'
                        os.makedirs(osp.join(root, 'train', name),
                                    exist_ok=True)
                    else:
                        rel = f'{name}_{file}'
                    shutil.move(osp.join(folder, file),
                                osp.join(root, split, rel))
                    lines[split].append(f'{rel} {label}')
        for split, rows in lines.items():
            with open(osp.join(root, 'meta', f'{split}.txt'), 'w') as f:
                f.write('\n'.join(rows) + '\n')
    return root


def make_tiny_data(root: str = HERE) -> str:
    """Write ``root/{coco,ade,imagenet}`` (replacing existing ones)."""
    for name, fn in (('coco', make_tiny_coco), ('ade', make_tiny_ade),
                     ('imagenet', make_tiny_imagenet)):
        path = osp.join(root, name)
        shutil.rmtree(path, ignore_errors=True)
        fn(path)
    return root


if __name__ == '__main__':
    print(make_tiny_data(sys.argv[1] if len(sys.argv) > 1 else HERE))

"""The synthetic demo data: same seed -> identical files; valid labels."""
import hashlib
import json
import os
import os.path as osp

import cv2
import numpy as np
import pytest

from gpusq_mm.datasets import CLASSES, make_cls, make_coco, make_seg


def _digest(root: str) -> dict:
    out = {}
    for base, _, files in os.walk(root):
        for name in files:
            path = osp.join(base, name)
            with open(path, 'rb') as f:
                out[osp.relpath(path, root)] = hashlib.md5(
                    f.read()).hexdigest()
    return out


@pytest.mark.parametrize('make', [make_cls, make_seg, make_coco])
def test_same_seed_same_files(tmp_path, make):
    a = _digest(make(str(tmp_path / 'a'), 6, 3, seed=5))
    b = _digest(make(str(tmp_path / 'b'), 6, 3, seed=5))
    c = _digest(make(str(tmp_path / 'c'), 6, 3, seed=6))
    assert a == b and len(a) >= 9
    assert a != c


def test_labels_are_consistent(tmp_path):
    cls = make_cls(str(tmp_path / 'cls'), 10, 5)
    assert sorted(os.listdir(osp.join(cls, 'train'))) == sorted(CLASSES)
    assert sum(len(os.listdir(osp.join(cls, 'train', c)))
               for c in CLASSES) == 10
    seg = make_seg(str(tmp_path / 'seg'), 4, 2)
    label = cv2.imread(osp.join(seg, 'ann_dir', 'train', '000000.png'),
                       cv2.IMREAD_UNCHANGED)
    assert label.shape == (64, 64) and label.max() <= len(CLASSES)
    coco = make_coco(str(tmp_path / 'coco'), 4, 2)
    with open(osp.join(coco, 'annotations', 'instances_train.json')) as f:
        ann = json.load(f)
    assert len(ann['images']) == 4 and ann['annotations']
    for a in ann['annotations']:
        x, y, w, h = a['bbox']
        assert w > 0 and h > 0 and x + w <= 160 and y + h <= 128
        pts = np.array(a['segmentation'][0]).reshape(-1, 2)
        assert (pts.min(0) >= [x, y]).all()
        assert 1 <= a['category_id'] <= len(CLASSES)
    with pytest.raises(ValueError, match='num_train'):
        make_cls(str(tmp_path / 'x'), 0, 1)

"""Deterministic synthetic datasets in the three codebases' formats.

Scenes (see :mod:`.render`) hold shapes of five classes with random
rotation, aspect, scale and occlusion on a cluttered gradient background;
each object is drawn in its class's typical texture and hue with some
probability (random ones otherwise), so tiny models learn well above chance
but do not saturate. No download; every image is a pure
function of ``(seed, split, index)``, so the same seed writes byte-identical
files. Each writer returns the dataset root.

- :func:`make_coco` — COCO instances (boxes + visible-part polygons) for
  mmdet.
- :func:`make_seg` — ``img_dir``/``ann_dir`` PNG label maps for mmseg
  (0 = background, ``k + 1`` = ``CLASSES[k]``).
- :func:`make_cls` — ImageNet-style class folders for mmpretrain; the label
  is the largest shape, smaller distractor shapes may occlude it.
"""
import json
import os
import os.path as osp
from typing import Iterable, List, Tuple

import cv2
import numpy as np

from .render import CLASSES, background, draw, finish, scene

SPLITS = ('train', 'val')


def _rng(seed: int, split: str, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, SPLITS.index(split), index])


def _progress(items: Iterable, total: int, desc: str, show: bool):
    if not show:
        return items
    from tqdm import tqdm
    return tqdm(items, total=total, desc=desc, unit='img', leave=False)


def _check_counts(num_train: int, num_val: int) -> None:
    if num_train < 1 or num_val < 1:
        raise ValueError(f'num_train and num_val must be >= 1, got '
                         f'{num_train} and {num_val}')


def _polygons(mask: np.ndarray) -> List[List[float]]:
    """Outer contours of a binary mask as COCO polygons (>= 3 points)."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL,
                                   cv2.CHAIN_APPROX_SIMPLE)
    return [c.reshape(-1).astype(float).tolist() for c in contours
            if len(c) >= 3]


def _instances(labels: List[int], masks: List[np.ndarray], full: List[int],
               image_id: int, first_id: int) -> List[dict]:
    """COCO annotations of the objects that stay >= 40 % visible."""
    anns = []
    for label, mask, area in zip(labels, masks, full):
        visible = int(mask.sum())
        polys = _polygons(mask)
        if visible < 16 or visible < 0.4 * area or not polys:
            continue
        ys, xs = np.nonzero(mask)
        x0, y0 = float(xs.min()), float(ys.min())
        anns.append(dict(
            id=first_id + len(anns), image_id=image_id,
            category_id=label + 1, iscrowd=0, area=float(visible),
            bbox=[x0, y0, float(xs.max()) + 1 - x0,
                  float(ys.max()) + 1 - y0],
            segmentation=polys))
    return anns


def make_coco(root: str, num_train: int = 8, num_val: int = 4,
              size: Tuple[int, int] = (128, 160), seed: int = 0,
              progress: bool = False) -> str:
    """Write a COCO-format instance segmentation + detection set.

    Layout: ``root/{train,val}/*.jpg`` and
    ``root/annotations/instances_{train,val}.json``; 1-6 objects per image,
    annotations cover the visible part of each object (objects less than
    40 % visible are treated as background).

    Args:
        root (str): Output directory.
        num_train (int): Training images. Defaults to 8.
        num_val (int): Validation images. Defaults to 4.
        size (tuple[int, int]): ``(h, w)``. Defaults to (128, 160).
        seed (int): Generator seed. Defaults to 0.
        progress (bool): Show a progress bar. Defaults to False.

    Returns:
        str: ``root``.
    """
    _check_counts(num_train, num_val)
    h, w = size
    os.makedirs(osp.join(root, 'annotations'), exist_ok=True)
    categories = [dict(id=i + 1, name=n) for i, n in enumerate(CLASSES)]
    for split, count in zip(SPLITS, (num_train, num_val)):
        os.makedirs(osp.join(root, split), exist_ok=True)
        images, anns = [], []
        for i in _progress(range(count), count, f'coco/{split}', progress):
            rng = _rng(seed, split, i)
            img, labels, masks, full = scene(
                rng, h, w, int(rng.integers(1, 7)), scale=(0.15, 0.45))
            name = f'{i:06d}.jpg'
            cv2.imwrite(osp.join(root, split, name), img)
            images.append(dict(id=i, file_name=name, height=h, width=w))
            anns += _instances(labels, masks, full, i, len(anns) + 1)
        with open(osp.join(root, 'annotations', f'instances_{split}.json'),
                  'w') as f:
            json.dump(dict(images=images, annotations=anns,
                           categories=categories), f)
    return root


def make_seg(root: str, num_train: int = 8, num_val: int = 4,
             size: Tuple[int, int] = (64, 64), seed: int = 1,
             progress: bool = False) -> str:
    """Write ``root/img_dir/{train,val}/*.jpg`` and
    ``root/ann_dir/{train,val}/*.png`` label maps (0 = background,
    ``k + 1`` = ``CLASSES[k]``); 1-5 objects per image.

    Args:
        root (str): Output directory.
        num_train (int): Training images. Defaults to 8.
        num_val (int): Validation images. Defaults to 4.
        size (tuple[int, int]): ``(h, w)``. Defaults to (64, 64).
        seed (int): Generator seed. Defaults to 1.
        progress (bool): Show a progress bar. Defaults to False.

    Returns:
        str: ``root``.
    """
    _check_counts(num_train, num_val)
    h, w = size
    for split, count in zip(SPLITS, (num_train, num_val)):
        img_dir = osp.join(root, 'img_dir', split)
        ann_dir = osp.join(root, 'ann_dir', split)
        os.makedirs(img_dir, exist_ok=True)
        os.makedirs(ann_dir, exist_ok=True)
        for i in _progress(range(count), count, f'seg/{split}', progress):
            rng = _rng(seed, split, i)
            img, labels, masks, _ = scene(
                rng, h, w, int(rng.integers(1, 6)), scale=(0.2, 0.55))
            label_map = np.zeros((h, w), np.uint8)
            for label, mask in zip(labels, masks):
                label_map[mask] = label + 1
            cv2.imwrite(osp.join(img_dir, f'{i:06d}.jpg'), img)
            cv2.imwrite(osp.join(ann_dir, f'{i:06d}.png'), label_map)
    return root


def make_cls(root: str, num_train: int = 8, num_val: int = 4,
             size: Tuple[int, int] = (64, 64), seed: int = 2,
             progress: bool = False) -> str:
    """Write ``root/{train,val}/<class>/*.jpg``, classes balanced.

    Each image shows one large shape (the label, 45-80 % of the image side)
    with its class's typical texture 70 % of the time (a random one
    otherwise), and 0-2 small distractor shapes behind or in front of it.

    Args:
        root (str): Output directory.
        num_train (int): Training images (balanced over ``CLASSES``).
            Defaults to 8.
        num_val (int): Validation images. Defaults to 4.
        size (tuple[int, int]): ``(h, w)``. Defaults to (64, 64).
        seed (int): Generator seed. Defaults to 2.
        progress (bool): Show a progress bar. Defaults to False.

    Returns:
        str: ``root``.
    """
    _check_counts(num_train, num_val)
    h, w = size
    for split, count in zip(SPLITS, (num_train, num_val)):
        for name in CLASSES:
            os.makedirs(osp.join(root, split, name), exist_ok=True)
        for i in _progress(range(count), count, f'cls/{split}', progress):
            rng = _rng(seed, split, i)
            label = i % len(CLASSES)
            img = _cls_image(rng, label, h, w)
            cv2.imwrite(osp.join(root, split, CLASSES[label], f'{i:06d}.jpg'),
                        img)
    return root


def _cls_image(rng: np.random.Generator, label: int, h: int,
               w: int) -> np.ndarray:
    img = background(rng, h, w, clutter=3)
    side = min(h, w)
    num_distract = int(rng.integers(0, 3))
    behind = int(rng.integers(0, num_distract + 1))
    main_size = rng.uniform(0.45, 0.8) * side
    for k in range(num_distract + 1):
        if k == behind:
            centre = (rng.uniform(0.4, 0.6) * w, rng.uniform(0.4, 0.6) * h)
            draw(rng, img, label, centre, main_size, typical=0.7)
            continue
        size = rng.uniform(0.1, 0.2) * side
        centre = (rng.uniform(0, w), rng.uniform(0, h))
        draw(rng, img, int(rng.integers(0, len(CLASSES))), centre, size,
             typical=0.0)
    return finish(rng, img)

"""Deterministic synthetic datasets in the three codebases' formats.

Images show filled shapes (square, disc, triangle) of random colour, size
and position on a noisy textured background, so tiny models have something
to learn without any download. Each writer returns the dataset root.

- :func:`make_coco` — COCO instances (boxes + polygon masks) for mmdet.
- :func:`make_seg` — ``img_dir``/``ann_dir`` PNG label maps for mmseg.
- :func:`make_cls` — ImageNet-style class folders for mmpretrain.
"""
import json
import os
import os.path as osp
from typing import List, Tuple

import cv2
import numpy as np

CLASSES = ('square', 'disc', 'triangle')


def _background(rng: np.random.Generator, h: int,
                w: int) -> Tuple[np.ndarray, np.ndarray]:
    """Noisy single-colour background and its base colour."""
    base = rng.integers(0, 256, size=3)
    img = np.empty((h, w, 3), np.float32)
    img[:] = base
    img += rng.normal(0, 20, size=(h, w, 3))
    return img, base


def _contrasting(rng: np.random.Generator, base: np.ndarray) -> list:
    """A colour at least 64 levels away from ``base`` in every channel."""
    return ((base + rng.integers(64, 193, size=3)) % 256).tolist()


def _shape_polygon(rng: np.random.Generator, label: int, h: int, w: int,
                   scale: Tuple[float, float] = (0.15, 0.45)) -> np.ndarray:
    size = rng.uniform(*scale) * min(h, w)
    cx = rng.uniform(size / 2, w - size / 2)
    cy = rng.uniform(size / 2, h - size / 2)
    if label == 0:
        angles = np.deg2rad(np.array([45, 135, 225, 315]) + rng.uniform(0, 90))
        radius = size / np.sqrt(2)
    elif label == 1:
        angles = np.linspace(0, 2 * np.pi, 24, endpoint=False)
        radius = size / 2
    else:
        angles = np.deg2rad(np.array([90, 210, 330]) + rng.uniform(0, 120))
        radius = size / 1.7
    pts = np.stack([cx + radius * np.cos(angles),
                    cy + radius * np.sin(angles)], axis=1)
    pts[:, 0] = pts[:, 0].clip(0, w - 1)
    pts[:, 1] = pts[:, 1].clip(0, h - 1)
    return pts.astype(np.float32)


def _render(rng: np.random.Generator, h: int, w: int, max_objects: int
            ) -> Tuple[np.ndarray, np.ndarray, List[Tuple[int, np.ndarray]]]:
    """Return image, label map (0 = background) and visible objects."""
    img, base = _background(rng, h, w)
    label_map = np.zeros((h, w), np.uint8)
    objects = []
    for _ in range(int(rng.integers(1, max_objects + 1))):
        label = int(rng.integers(0, len(CLASSES)))
        pts = _shape_polygon(rng, label, h, w)
        colour = _contrasting(rng, base)
        cv2.fillPoly(img, [pts.round().astype(np.int32)], colour)
        cv2.fillPoly(label_map, [pts.round().astype(np.int32)], label + 1)
        objects.append((label, pts))
    img = np.clip(img, 0, 255).astype(np.uint8)
    return img, label_map, objects


def make_coco(root: str, num_train: int = 8, num_val: int = 4,
              size: Tuple[int, int] = (128, 160), seed: int = 0) -> str:
    """Write a COCO-format instance segmentation set under ``root``.

    Layout: ``root/{train,val}/*.jpg`` and
    ``root/annotations/instances_{train,val}.json``.
    Later objects may occlude earlier ones; masks are the drawn polygons.
    """
    rng = np.random.default_rng(seed)
    h, w = size
    os.makedirs(osp.join(root, 'annotations'), exist_ok=True)
    for split, count in (('train', num_train), ('val', num_val)):
        os.makedirs(osp.join(root, split), exist_ok=True)
        images, anns = [], []
        for i in range(count):
            img, _, objects = _render(rng, h, w, max_objects=3)
            name = f'{i:06d}.jpg'
            cv2.imwrite(osp.join(root, split, name), img)
            images.append(dict(id=i, file_name=name, height=h, width=w))
            for label, pts in objects:
                x0, y0 = pts.min(0)
                x1, y1 = pts.max(0)
                anns.append(dict(
                    id=len(anns) + 1, image_id=i, category_id=label + 1,
                    bbox=[float(x0), float(y0), float(x1 - x0),
                          float(y1 - y0)],
                    area=float(cv2.contourArea(pts)),
                    segmentation=[pts.reshape(-1).round(2).tolist()],
                    iscrowd=0))
        categories = [dict(id=i + 1, name=n) for i, n in enumerate(CLASSES)]
        with open(osp.join(root, 'annotations', f'instances_{split}.json'),
                  'w') as f:
            json.dump(dict(images=images, annotations=anns,
                           categories=categories), f)
    return root


def make_seg(root: str, num_train: int = 8, num_val: int = 4,
             size: Tuple[int, int] = (64, 64), seed: int = 1) -> str:
    """Write ``root/img_dir/{train,val}/*.jpg`` and
    ``root/ann_dir/{train,val}/*.png`` (0 = background, 1.. = shapes)."""
    rng = np.random.default_rng(seed)
    h, w = size
    for split, count in (('train', num_train), ('val', num_val)):
        os.makedirs(osp.join(root, 'img_dir', split), exist_ok=True)
        os.makedirs(osp.join(root, 'ann_dir', split), exist_ok=True)
        for i in range(count):
            img, label_map, _ = _render(rng, h, w, max_objects=3)
            cv2.imwrite(osp.join(root, 'img_dir', split, f'{i:06d}.jpg'), img)
            cv2.imwrite(osp.join(root, 'ann_dir', split, f'{i:06d}.png'),
                        label_map)
    return root


def make_cls(root: str, num_train: int = 8, num_val: int = 4,
             size: Tuple[int, int] = (32, 32), seed: int = 2) -> str:
    """Write ``root/{train,val}/<class>/*.jpg`` with one shape per image."""
    rng = np.random.default_rng(seed)
    h, w = size
    for split, count in (('train', num_train), ('val', num_val)):
        for name in CLASSES:
            os.makedirs(osp.join(root, split, name), exist_ok=True)
        for i in range(count):
            label = i % len(CLASSES)
            img, base = _background(rng, h, w)
            pts = _shape_polygon(rng, label, h, w, scale=(0.4, 0.8))
            colour = _contrasting(rng, base)
            cv2.fillPoly(img, [pts.round().astype(np.int32)], colour)
            img = np.clip(img, 0, 255).astype(np.uint8)
            cv2.imwrite(osp.join(root, split, CLASSES[label], f'{i:06d}.jpg'),
                        img)
    return root

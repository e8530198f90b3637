"""Drawing primitives of the synthetic demo data (numpy + OpenCV only).

A scene is a cluttered, textured background with filled shapes on it. Each
shape has a class (:data:`CLASSES`), a random rotation, scale and aspect
jitter, and a fill that is solid, striped or checkered; later shapes occlude
earlier ones. Every random draw comes from the ``rng`` passed in, so a scene
is a pure function of its generator state.
"""
from typing import List, Tuple

import cv2
import numpy as np

CLASSES = ('square', 'disc', 'triangle', 'star', 'cross')


def background(rng: np.random.Generator, h: int, w: int,
               clutter: int = 5) -> np.ndarray:
    """A float32 ``(h, w, 3)`` image: colour gradient, low-frequency blotches,
    pixel noise and 1 to ``clutter`` thin lines or small ellipses."""
    c0, c1 = rng.uniform(0, 255, size=(2, 3))
    ramp = np.linspace(0, 1, w if rng.random() < 0.5 else h, dtype=np.float32)
    ramp = ramp[None, :, None] if len(ramp) == w else ramp[:, None, None]
    img = c0 + (c1 - c0) * ramp * np.ones((h, w, 1), np.float32)
    blotch = rng.normal(0, 30, size=(4, 4, 3)).astype(np.float32)
    img += cv2.resize(blotch, (w, h), interpolation=cv2.INTER_CUBIC)
    for _ in range(int(rng.integers(1, clutter + 1))):
        colour = rng.uniform(0, 255, size=3).tolist()
        p0 = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        if rng.random() < 0.5:
            p1 = (int(rng.integers(0, w)), int(rng.integers(0, h)))
            cv2.line(img, p0, p1, colour, int(rng.integers(1, 3)),
                     cv2.LINE_AA)
        else:
            axes = (int(rng.integers(1, max(w // 16, 2))),
                    int(rng.integers(1, max(h // 24, 2))))
            cv2.ellipse(img, p0, axes, float(rng.uniform(0, 180)), 0, 360,
                        colour, -1, cv2.LINE_AA)
    img += rng.normal(0, 8, size=(h, w, 3)).astype(np.float32)
    return img


def shape_polygon(rng: np.random.Generator, label: int, centre: Tuple[float,
                  float], size: float) -> np.ndarray:
    """Vertices ``(N, 2)`` of a ``CLASSES[label]`` shape of diameter ~size,
    randomly rotated and stretched (aspect 0.75-1.33)."""
    turn = rng.uniform(0, 2 * np.pi)
    if label == 0:  # square
        ang = np.arange(4) * np.pi / 2 + np.pi / 4
        rad = np.full(4, size / np.sqrt(2) * 0.8)
    elif label == 1:  # disc
        ang = np.linspace(0, 2 * np.pi, 32, endpoint=False)
        rad = np.full(32, size / 2)
    elif label == 2:  # triangle
        ang = np.arange(3) * 2 * np.pi / 3
        rad = np.full(3, size / 1.7)
    elif label == 3:  # five-pointed star
        ang = np.arange(10) * np.pi / 5
        rad = np.where(np.arange(10) % 2 == 0, size / 2, size / 4.5)
    else:  # plus-shaped cross: 12 vertices
        a, b = size / 2, size / 6
        pts = np.array([[b, a], [b, b], [a, b], [a, -b], [b, -b], [b, -a],
                        [-b, -a], [-b, -b], [-a, -b], [-a, b], [-b, b],
                        [-b, a]])
        ang = np.arctan2(pts[:, 1], pts[:, 0])
        rad = np.hypot(pts[:, 0], pts[:, 1])
    stretch = rng.uniform(0.75, 1.33)
    x = rad * np.cos(ang + turn) * stretch
    y = rad * np.sin(ang + turn) / stretch
    return np.stack([centre[0] + x, centre[1] + y], 1).astype(np.float32)


def _colour(rng: np.random.Generator, avoid: np.ndarray) -> np.ndarray:
    """A random colour at least 100 (RGB distance) from ``avoid``."""
    for _ in range(20):
        c = rng.uniform(0, 255, size=3).astype(np.float32)
        if np.linalg.norm(c - avoid) >= 100:
            return c
    return (255 - avoid).astype(np.float32)


def fill(rng: np.random.Generator, img: np.ndarray, mask: np.ndarray,
         textured: float = 0.5) -> None:
    """Paint ``img`` where ``mask`` in colours that stand out from what is
    under it: solid, or (with probability ``textured``) striped or
    checkered."""
    if not mask.any():
        return
    under = img[mask].mean(0)
    c0 = _colour(rng, under)
    if rng.random() >= textured:
        img[mask] = c0
        return
    c1 = _colour(rng, under)
    h, w = mask.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    period = rng.uniform(4, 9)
    theta = rng.uniform(0, np.pi)
    u = (xx * np.cos(theta) + yy * np.sin(theta)) / period
    if rng.random() < 0.5:
        sel = (np.floor(u) % 2).astype(bool)
    else:
        v = (-xx * np.sin(theta) + yy * np.cos(theta)) / period
        sel = ((np.floor(u) + np.floor(v)) % 2).astype(bool)
    img[mask & sel] = c0
    img[mask & ~sel] = c1


def draw(rng: np.random.Generator, img: np.ndarray, label: int,
         centre: Tuple[float, float], size: float,
         textured: float = 0.5) -> np.ndarray:
    """Draw one shape into ``img``; return its full (unoccluded) mask."""
    pts = shape_polygon(rng, label, centre, size)
    mask = np.zeros(img.shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round(pts).astype(np.int32)], 1)
    mask = mask.astype(bool)
    fill(rng, img, mask, textured)
    return mask


def scene(rng: np.random.Generator, h: int, w: int, num_objects: int,
          scale: Tuple[float, float]
          ) -> Tuple[np.ndarray, List[int], List[np.ndarray], List[int]]:
    """Render ``num_objects`` random shapes on a background.

    Returns:
        tuple: uint8 image, labels, the *visible* mask of each object
        (occluded parts removed; an object may end up fully hidden) and
        the unoccluded area of each object in pixels.
    """
    img = background(rng, h, w)
    labels, masks, areas = [], [], []
    for _ in range(num_objects):
        label = int(rng.integers(0, len(CLASSES)))
        size = rng.uniform(*scale) * min(h, w)
        centre = (rng.uniform(size / 3, w - size / 3),
                  rng.uniform(size / 3, h - size / 3))
        mask = draw(rng, img, label, centre, size)
        masks = [m & ~mask for m in masks]
        labels.append(label)
        masks.append(mask)
        areas.append(int(mask.sum()))
    return finish(rng, img), labels, masks, areas


def finish(rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
    """Light blur (sometimes) and pixel noise, then clip to uint8."""
    if rng.random() < 0.3:
        img = cv2.GaussianBlur(img, (3, 3), 0)
    img = img + rng.normal(0, 6, size=img.shape).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)

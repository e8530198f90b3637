"""Drawing primitives of the synthetic demo data (numpy + OpenCV only).

A scene is a cluttered, textured background with filled shapes on it. Each
shape has a class (:data:`CLASSES`), a random rotation, scale and aspect
jitter, and a two-colour texture (:data:`STYLES`) that, with some
probability, is the class's typical texture and hue (:data:`TYPICAL`,
:data:`HUES`); later shapes occlude earlier ones. Every random draw comes
from the ``rng`` passed in, so a scene is a pure function of its generator
state.
"""
from typing import List, Optional, Tuple

import cv2
import numpy as np

CLASSES = ('square', 'disc', 'triangle', 'star', 'cross')
STYLES = ('checker', 'solid', 'stripes', 'dots', 'grid')
# each class's typical texture (index-aligned with CLASSES)
TYPICAL = STYLES
HUES = (0., 55., 120., 210., 285.)  # and typical hue (degrees)


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


def _pattern(rng: np.random.Generator, style: str, h: int,
             w: int) -> np.ndarray:
    """Boolean ``(h, w)`` selector of the first colour of a texture."""
    if style == 'solid':
        return np.ones((h, w), bool)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    theta = rng.uniform(0, np.pi)
    u = xx * np.cos(theta) + yy * np.sin(theta)
    v = -xx * np.sin(theta) + yy * np.cos(theta)
    period = rng.uniform(5, 8)
    if style == 'stripes':
        return (np.floor(u / period) % 2).astype(bool)
    if style == 'checker':
        return ((np.floor(u / period) + np.floor(v / period)) % 2
                ).astype(bool)
    if style == 'dots':
        du = (u / period) % 1 - 0.5
        dv = (v / period) % 1 - 0.5
        return du * du + dv * dv > 0.09
    # 'grid': thin lines on a plain fill
    return ((u / period) % 1 > 0.3) & ((v / period) % 1 > 0.3)


def _hue_colour(rng: np.random.Generator, hue: float) -> np.ndarray:
    """A saturated RGB colour within 15 degrees of ``hue``."""
    hsv = np.array([[[((hue + rng.uniform(-15, 15)) % 360) / 2,
                      rng.uniform(150, 255), rng.uniform(130, 255)]]])
    rgb = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)
    return rgb[0, 0].astype(np.float32)


def fill(rng: np.random.Generator, img: np.ndarray, mask: np.ndarray,
         style: str = 'solid', hue: Optional[float] = None) -> None:
    """Paint ``img`` where ``mask`` with a texture of :data:`STYLES` in
    two colours that stand out from what is under it (the first one of
    ``hue`` when given)."""
    if not mask.any():
        return
    under = img[mask].mean(0)
    c0, c1 = _colour(rng, under), _colour(rng, under)
    if hue is not None:
        c0 = _hue_colour(rng, hue)
    sel = _pattern(rng, style, *mask.shape)
    img[mask & sel] = c0
    img[mask & ~sel] = c1


def pick_style(rng: np.random.Generator, label: int,
               typical: float) -> Tuple[str, Optional[float]]:
    """Texture and hue of an object: the class's typical ones
    (:data:`TYPICAL`, :data:`HUES`) with probability ``typical``, else a
    random texture and colour, as real categories have typical but not
    certain appearances."""
    if rng.random() < typical:
        return TYPICAL[label], HUES[label]
    return STYLES[int(rng.integers(0, len(STYLES)))], None


def draw(rng: np.random.Generator, img: np.ndarray, label: int,
         centre: Tuple[float, float], size: float,
         typical: float = 0.5) -> np.ndarray:
    """Draw one shape into ``img`` with a texture from :func:`pick_style`;
    return its full (unoccluded) mask."""
    pts = shape_polygon(rng, label, centre, size)
    mask = np.zeros(img.shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round(pts).astype(np.int32)], 1)
    mask = mask.astype(bool)
    fill(rng, img, mask, *pick_style(rng, label, typical))
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

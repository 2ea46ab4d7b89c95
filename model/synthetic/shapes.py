"""Shapes, masks and textures of synthetic instances.

Coordinates are pixels with the COCO convention (x right, y down). Polygon
masks are rasterised by pycocotools, so an annotation's polygon and the painted
pixels agree exactly with ``COCO.annToMask``.
"""
import math
from typing import List, Optional, Tuple

import numpy as np
from pycocotools import mask as mask_utils

Polygon = List[float]  # flat [x0, y0, x1, y1, ...]


def _regular(cx: float, cy: float, radius: float, vertices: int, angle: float) -> Polygon:
    points = []
    for k in range(vertices):
        theta = angle + 2 * math.pi * k / vertices
        points += [cx + radius * math.cos(theta), cy + radius * math.sin(theta)]
    return [round(v, 2) for v in points]


def _cross(cx: float, cy: float, radius: float, angle: float) -> Polygon:
    arm = 0.35 * radius
    corners = [(arm, radius), (arm, arm), (radius, arm), (radius, -arm), (arm, -arm), (arm, -radius),
               (-arm, -radius), (-arm, -arm), (-radius, -arm), (-radius, arm), (-arm, arm), (-arm, radius)]
    cos, sin = math.cos(angle), math.sin(angle)
    points = []
    for x, y in corners:
        points += [round(cx + x * cos - y * sin, 2), round(cy + x * sin + y * cos, 2)]
    return points


def shape_polygons(name: str, cx: float, cy: float, radius: float, angle: float) -> Optional[List[Polygon]]:
    """Polygon parts of a shape inscribed in the circle (cx, cy, radius); None for 'ring'."""
    if name == "disc":
        return [_regular(cx, cy, radius, 24, angle)]
    if name == "square":
        return [_regular(cx, cy, radius, 4, angle)]
    if name == "triangle":
        return [_regular(cx, cy, radius, 3, angle)]
    if name == "cross":
        return [_cross(cx, cy, radius, angle)]
    if name == "pair":
        dx, dy = 0.55 * radius * math.cos(angle), 0.55 * radius * math.sin(angle)
        return [_regular(cx - dx, cy - dy, 0.45 * radius, 12, angle),
                _regular(cx + dx, cy + dy, 0.45 * radius, 12, angle)]
    if name == "ring":
        return None
    raise ValueError(f"unknown shape {name!r}")


def polygons_to_mask(parts: List[Polygon], height: int, width: int) -> np.ndarray:
    """uint8 [height, width] 0/1, exactly as pycocotools rasterises the parts."""
    return mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(parts, height, width)))


def ring_mask(cx: float, cy: float, radius: float, height: int, width: int) -> np.ndarray:
    """An annulus (inner radius half the outer) sampled at pixel centres; uint8 [H, W]."""
    ys, xs = np.mgrid[0:height, 0:width]
    distance = np.hypot(xs + 0.5 - cx, ys + 0.5 - cy)
    return ((distance <= radius) & (distance >= 0.5 * radius)).astype(np.uint8)


def texture(pattern: str, colour: Tuple[int, int, int], height: int, width: int,
            rng: np.random.Generator) -> np.ndarray:
    """uint8 [H, W, 3]: the colour with a pattern ('solid', 'striped', 'dotted') and noise."""
    base = np.empty([height, width, 3], np.float32)
    base[:] = colour
    ys, xs = np.mgrid[0:height, 0:width]
    if pattern == "striped":
        dark = ((xs + ys) // 3) % 2 == 0
    elif pattern == "dotted":
        dark = (xs % 6 < 2) & (ys % 6 < 2)
    elif pattern == "solid":
        dark = np.zeros([height, width], bool)
    else:
        raise ValueError(f"unknown pattern {pattern!r}")
    base[dark] *= 0.3
    base += rng.normal(0.0, 6.0, base.shape)
    return np.clip(base, 0, 255).astype(np.uint8)


def background(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """A low-contrast grey texture, uint8 [H, W, 3]."""
    level = rng.uniform(100, 160)
    smooth = rng.normal(0, 10, [height // 8 + 1, width // 8 + 1, 1]).repeat(8, 0).repeat(8, 1)
    noise = rng.normal(0, 5, [height, width, 3])
    return np.clip(level + smooth[:height, :width] + noise, 0, 255).astype(np.uint8)

"""Pastes a detection's small probability mask into its box at image resolution."""
from typing import Tuple

import numpy as np


def paste_mask(probabilities: np.ndarray, box: Tuple[float, float, float, float], height: int,
               width: int, threshold: float = 0.5) -> np.ndarray:
    """float [M, M] probabilities over the box, box (xmin, ymin, xmax, ymax) in pixels ->
    uint8 [height, width] 0/1 mask: bilinear samples at pixel centres, >= threshold."""
    canvas = np.zeros((height, width), np.uint8)
    xmin, ymin, xmax, ymax = box
    x0, y0 = max(int(np.floor(xmin)), 0), max(int(np.floor(ymin)), 0)
    x1, y1 = min(int(np.ceil(xmax)), width), min(int(np.ceil(ymax)), height)
    if x1 <= x0 or y1 <= y0 or xmax <= xmin or ymax <= ymin:
        return canvas
    size_y, size_x = probabilities.shape
    u = (np.arange(x0, x1) + 0.5 - xmin) / (xmax - xmin) * size_x - 0.5
    v = (np.arange(y0, y1) + 0.5 - ymin) / (ymax - ymin) * size_y - 0.5
    u = np.clip(u, 0, size_x - 1)
    v = np.clip(v, 0, size_y - 1)
    u0, v0 = np.floor(u).astype(int), np.floor(v).astype(int)
    u1, v1 = np.minimum(u0 + 1, size_x - 1), np.minimum(v0 + 1, size_y - 1)
    fu, fv = (u - u0)[np.newaxis, :], (v - v0)[:, np.newaxis]
    top = probabilities[v0][:, u0] * (1 - fu) + probabilities[v0][:, u1] * fu
    bottom = probabilities[v1][:, u0] * (1 - fu) + probabilities[v1][:, u1] * fu
    canvas[y0:y1, x0:x1] = (top * (1 - fv) + bottom * fv) >= threshold
    return canvas

"""Pictures of predicted instances: each mask filled in its own colour and outlined,
its box, and a label with the category name, score and top attribute names.

Pillow and numpy only; masks arrive as COCO RLE and are decoded with pycocotools.
"""
import colorsys
import dataclasses
from typing import Dict, List, Optional, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from pycocotools import mask as mask_utils

FILL_OPACITY = 0.45


@dataclasses.dataclass
class DrawnInstance:
    """One detection to draw. bbox: [x, y, w, h] in pixels; segmentation: COCO RLE
    of the original image size (or None); attribute_names: best first."""
    category_name: str
    score: float
    bbox: Optional[Sequence[float]] = None
    segmentation: Optional[Dict] = None
    attribute_names: Sequence[str] = ()


def instance_colour(index: int) -> tuple:
    """A bright colour per index; consecutive indexes are far apart in hue."""
    hue = (index * 0.618033988749895) % 1.0
    red, green, blue = colorsys.hsv_to_rgb(hue, 0.85, 0.95)
    return int(red * 255), int(green * 255), int(blue * 255)


def _rle_bytes(segmentation: Dict) -> Dict:
    rle = dict(segmentation)
    if isinstance(rle.get("counts"), str):
        rle["counts"] = rle["counts"].encode("ascii")
    return rle


def _decoded_mask(segmentation: Dict, size: tuple) -> np.ndarray:
    """bool[height, width] of the image, resized (nearest) if the RLE was made for another size."""
    mask = mask_utils.decode(_rle_bytes(segmentation)).astype(bool)
    width, height = size
    if mask.shape != (height, width):
        mask = np.array(Image.fromarray(mask.astype(np.uint8) * 255).resize((width, height), Image.NEAREST)) > 0
    return mask


def _outline(mask: np.ndarray) -> np.ndarray:
    """Mask pixels with a 4-neighbour outside the mask."""
    padded = np.pad(mask, 1)
    interior = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    return mask & ~interior


def _font(image_height: int):
    size = max(11, image_height // 45)
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def _label_lines(instance: DrawnInstance, max_attributes: int) -> List[str]:
    lines = [f"{instance.category_name} {instance.score:.2f}"]
    if instance.attribute_names and max_attributes:
        lines.append(", ".join(instance.attribute_names[:max_attributes]))
    return lines


def _overlaps(box: tuple, others: List[tuple]) -> bool:
    return any(box[0] < o[2] and o[0] < box[2] and box[1] < o[3] and o[1] < box[3] for o in others)


def _draw_label(draw: ImageDraw.ImageDraw, lines: List[str], anchor: tuple, colour: tuple, font, size: tuple,
                placed: List[tuple]):
    """Text on a filled box of the instance's colour, above the anchor when there is
    room, moved down past labels already ``placed`` (which it joins)."""
    text = "\n".join(lines)
    left, top, right, bottom = draw.multiline_textbbox((0, 0), text, font=font, spacing=2)
    width, height = right - left + 6, bottom - top + 4
    x = min(max(0, int(anchor[0])), max(0, size[0] - width))
    y = int(anchor[1]) - height if anchor[1] - height >= 0 else int(anchor[1])
    y = min(max(0, y), max(0, size[1] - height))
    for _ in range(len(placed)):
        if not _overlaps((x, y, x + width, y + height), placed):
            break
        y = y + height + 1 if y + 2 * height + 1 <= size[1] else 0
    placed.append((x, y, x + width, y + height))
    draw.rectangle([x, y, x + width, y + height], fill=colour)
    brightness = 0.299 * colour[0] + 0.587 * colour[1] + 0.114 * colour[2]
    ink = (0, 0, 0) if brightness > 150 else (255, 255, 255)
    draw.multiline_text((x + 3 - left, y + 2 - top), text, fill=ink, font=font, spacing=2)


def draw_instances(image: Image.Image, instances: Sequence[DrawnInstance], max_attributes: int = 3) -> Image.Image:
    """A new RGB image with ``instances`` drawn (best score on top); colour i goes
    to the i-th instance in order of decreasing score."""
    canvas = np.array(image.convert("RGB"), dtype=np.float32)
    ranked = sorted(range(len(instances)), key=lambda i: -instances[i].score)
    colours = {index: instance_colour(rank) for rank, index in enumerate(ranked)}
    drawing_order = ranked[::-1]
    for index in drawing_order:
        if instances[index].segmentation is None:
            continue
        mask = _decoded_mask(instances[index].segmentation, image.size)
        colour = np.array(colours[index], dtype=np.float32)
        canvas[mask] = (1 - FILL_OPACITY) * canvas[mask] + FILL_OPACITY * colour
        canvas[_outline(mask)] = colour
    result = Image.fromarray(np.clip(np.round(canvas), 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(result)
    font = _font(image.size[1])
    placed: List[tuple] = []
    for index in ranked:  # the best placed first, the others moved out of its way
        instance = instances[index]
        box = instance.bbox
        if box is None and instance.segmentation is not None:
            box = mask_utils.toBbox(_rle_bytes(instance.segmentation)).tolist()
        anchor = (0, 0)
        if box is not None:
            x, y, w, h = box
            draw.rectangle([x, y, x + w, y + h], outline=colours[index], width=2)
            anchor = (x, y)
        _draw_label(draw, _label_lines(instance, max_attributes), anchor, colours[index], font, image.size, placed)
    return result

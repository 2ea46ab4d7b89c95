"""encode_masks_rle against full-canvas encoding, on the same detections in the same run.

  python benchmarks/encode_rle.py [--detections 100] [--height 768] [--width 1024] [--repeats 5]

Detections: 28 x 28 masks (a smooth blob with noise, like a trained mask head's
output) in boxes from 16 px to most of the image, some crossing the border.
Paths timed (median and fastest of --repeats calls for the reference and of 10 x
--repeats for the fast path, after one untimed call of each; all outputs asserted identical;
the fastest call is the least disturbed by other work on the machine):
  fast       encode_masks_rle: all detections of the image together, per-pixel
             work only where a mask crosses the threshold, runs built directly.
  reference  per detection: paste_masks (full-canvas probabilities) + threshold
             + pycocotools.mask.encode of the H x W mask.
"""
import argparse
import os
import statistics
import sys
import time

import numpy as np
from pycocotools import mask as coco_mask

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from model.masks import paste, rle  # noqa: E402


def detections(count: int, height: int, width: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    grid = (np.arange(28) + 0.5) / 28
    probs = []
    for _ in range(count):
        cy, cx = rng.uniform(0.35, 0.65, size=2)
        ry, rx = rng.uniform(0.25, 0.5, size=2)
        blob = np.exp(-(((grid[:, None] - cy) / ry) ** 2 + ((grid[None, :] - cx) / rx) ** 2))
        probs.append(np.clip(blob + rng.normal(0, 0.05, (28, 28)), 0, 1))
    sizes = np.exp(rng.uniform(np.log(16), np.log(0.8 * min(height, width)), size=(count, 2)))
    corners = rng.uniform(-0.1, 1.0, size=(count, 2)) * [width, height]
    boxes = np.concatenate([corners, corners + sizes[:, ::-1]], axis=1)
    return np.array(probs, np.float32), boxes


def reference_path(probs, boxes, height, width):
    out = []
    for index in range(len(boxes)):
        mask = paste.paste_masks(probs[index:index + 1], boxes[index:index + 1], height, width)[0]
        encoded = coco_mask.encode(np.asfortranarray(mask))
        out.append({"size": [height, width], "counts": encoded["counts"].decode("ascii")})
    return out


def fast_path(probs, boxes, height, width):
    return rle.encode_masks_rle(probs, boxes, height, width)


def timed(function, repeats, *args):
    """(median, fastest) wall seconds of ``repeats`` calls, and the last result."""
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function(*args)
        times.append(time.perf_counter() - start)
    return statistics.median(times), min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--detections", type=int, default=100)
    parser.add_argument("--height", type=int, default=768)
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    probs, boxes = detections(args.detections, args.height, args.width)
    shape = (probs, boxes, args.height, args.width)
    # Both paths run once before either is timed, so both are timed in the same state of
    # the process (imports done, the allocator's heap grown to its working size).
    fast_path(*shape)
    reference_path(*shape)
    # The fast path is timed over ten times as many calls: its calls are short, so one
    # scheduling hiccup would otherwise move its median.
    fast_median, fast_min, fast = timed(fast_path, 10 * args.repeats, *shape)
    reference_median, reference_min, reference = timed(reference_path, args.repeats, *shape)
    assert fast == reference, "outputs differ"
    empty = sum(coco_mask.area({"size": r["size"], "counts": r["counts"].encode()}) == 0 for r in fast)
    print(f"{args.detections} detections on {args.width}x{args.height} ({empty} empty masks), "
          f"outputs identical; ms per image, median (fastest)")
    print(f"fast (encode_masks_rle):        {fast_median * 1e3:8.2f} ({fast_min * 1e3:.2f})  "
          f"{fast_median / args.detections * 1e6:.0f} us per detection")
    print(f"reference (paste_masks+encode): {reference_median * 1e3:8.2f} ({reference_min * 1e3:.2f})  "
          f"ratio {reference_median / fast_median:.1f}x ({reference_min / fast_min:.1f}x fastest)")


if __name__ == "__main__":
    main()

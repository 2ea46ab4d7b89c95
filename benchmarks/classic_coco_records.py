"""The baseline: records made the way the classic COCO record script does it.

Whole JSON loaded with json.load; each image decoded with PIL and re-encoded as
JPEG through a temporary file; each mask rasterised with pycocotools and written
as an 8-bit PNG with Pillow's defaults; examples built in a multiprocessing pool
and written to round-robin shards by the parent. Used only by the benchmark.

  python benchmarks/classic_coco_records.py JSON IMAGE_DIR OUTPUT_PREFIX NUM_SHARDS NUM_PROCESSES
"""
import collections
import hashlib
import io
import json
import multiprocessing
import os
import sys
import tempfile

import numpy as np
import tensorflow as tf
from PIL import Image
from pycocotools import mask as mask_utils


def _feature_bytes(values):
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=values))


def _feature_floats(values):
    return tf.train.Feature(float_list=tf.train.FloatList(value=values))


def _feature_ints(values):
    return tf.train.Feature(int64_list=tf.train.Int64List(value=values))


def _example(job):
    image, annotations, image_dir, category_index, num_attributes = job
    with Image.open(os.path.join(image_dir, image["file_name"])) as source:
        pixels = source.convert("RGB")
        with tempfile.NamedTemporaryFile(suffix=".jpg") as temporary:
            pixels.save(temporary.name, format="JPEG")
            with open(temporary.name, "rb") as stream:
                encoded = stream.read()
    height, width = image["height"], image["width"]
    xmin, ymin, xmax, ymax, classes, crowd, areas, masks = [], [], [], [], [], [], [], []
    attributes = np.zeros([len(annotations), num_attributes], bool)
    for row, annotation in enumerate(annotations):
        x, y, w, h = annotation["bbox"]
        xmin.append(x / width)
        ymin.append(y / height)
        xmax.append((x + w) / width)
        ymax.append((y + h) / height)
        classes.append(category_index[annotation["category_id"]])
        crowd.append(annotation["iscrowd"])
        areas.append(annotation["area"])
        segmentation = annotation["segmentation"]
        rle = (mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
               if isinstance(segmentation, list) else segmentation)
        buffer = io.BytesIO()
        Image.fromarray(mask_utils.decode(rle)).save(buffer, format="PNG")
        masks.append(buffer.getvalue())
        attributes[row, annotation.get("attribute_ids", [])] = True
    feature = {
        "image/encoded": _feature_bytes([encoded]),
        "image/format": _feature_bytes([b"jpeg"]),
        "image/height": _feature_ints([height]),
        "image/width": _feature_ints([width]),
        "image/filename": _feature_bytes([image["file_name"].encode()]),
        "image/source_id": _feature_bytes([str(image["id"]).encode()]),
        "image/key/sha256": _feature_bytes([hashlib.sha256(encoded).hexdigest().encode()]),
        "image/object/bbox/xmin": _feature_floats(xmin),
        "image/object/bbox/ymin": _feature_floats(ymin),
        "image/object/bbox/xmax": _feature_floats(xmax),
        "image/object/bbox/ymax": _feature_floats(ymax),
        "image/object/class/label": _feature_ints(classes),
        "image/object/is_crowd": _feature_ints(crowd),
        "image/object/area": _feature_floats(areas),
        "image/object/mask": _feature_bytes(masks),
        "image/object/attributes/labels": _feature_bytes([attributes.tobytes()]),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def main(json_path, image_dir, prefix, num_shards, num_processes):
    with open(json_path) as stream:
        document = json.load(stream)
    by_image = collections.defaultdict(list)
    for annotation in document["annotations"]:
        by_image[annotation["image_id"]].append(annotation)
    category_index = {c["id"]: i + 1 for i, c in enumerate(sorted(document["categories"],
                                                                   key=lambda c: c["id"]))}
    num_attributes = max(a["id"] for a in document["attributes"]) + 1
    jobs = [(image, by_image[image["id"]], image_dir, category_index, num_attributes)
            for image in document["images"]]
    writers = [tf.io.TFRecordWriter(f"{prefix}-{i:05d}-of-{num_shards:05d}.tfrecord")
               for i in range(num_shards)]
    with multiprocessing.Pool(num_processes) as pool:
        for index, serialized in enumerate(pool.imap(_example, jobs, chunksize=4)):
            writers[index % num_shards].write(serialized)
    for writer in writers:
        writer.close()
    print(f"baseline wrote {len(jobs)} records")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))

"""An imported reference checkpoint detects what the reference implementation detected.

For every architecture with a fixture (tests/fixtures/reference/): the checkpoint the
reference run saved is rebuilt from the fixture's seed and variable list, imported with
``model.checkpoint_import`` exactly as ``python -m model.import_checkpoint`` does, and
run on the reference's own model inputs. Every reference detection scoring >= 0.05 must
have one here with the same class, box IoU >= 0.99, score within 0.005, 28x28 mask
probabilities within 0.01 and attribute probabilities within 0.005, and no detection
here above 0.1 may lack a reference one. The photos' preprocessing is compared too.
"""
import json
import os
import random

import numpy as np
import pytest
import tensorflow as tf

from model.checkpoint_import import importer
from model.serving import preprocess
from tests import reference_fixtures as fixtures

SHARED_FIXTURES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                               "..", "shared", "fixtures")


def spread_label_map(path, num_attributes: int) -> list:
    """A label map with 46 categories and ``num_attributes`` attribute ids spread over
    0..340 (as the 2020 taxonomy's are); returns the ids in output order."""
    ids = sorted(random.Random(0).sample(range(340), num_attributes - 1)) + [340]
    with open(path, "w") as stream:
        json.dump({"categories": [{"id": i, "name": f"category {i}"} for i in range(46)],
                   "attributes": [{"id": i, "name": f"attribute {i}"} for i in ids]}, stream)
    return ids


def import_fixture(architecture, tmp_path):
    meta = fixtures.metadata(architecture)
    prefix = fixtures.write_reference_checkpoint(architecture, str(tmp_path / "model.ckpt-1"))
    columns, label_map = None, None
    if meta["family"] == "tpu_fashionpedia":
        label_map = str(tmp_path / "taxonomy.json")
        outputs = [shape for name, shape in meta["variables"]
                   if name.endswith("attribute-predict/bias")][0][0]
        columns = spread_label_map(label_map, outputs)
    imported = importer.import_checkpoint(prefix, fixtures.config_path(architecture),
                                          meta["image_size"], label_map)
    return imported, columns


def our_image_info(reference_info: np.ndarray) -> np.ndarray:
    """Reference image_info rows [original, desired (padded) size, scale, offset] -> ours
    [original, scaled size, scale, offset]."""
    info = np.array(reference_info, np.float32)
    info[:, 1] = np.round(info[:, 0] * info[:, 2])
    return info


@pytest.mark.parametrize("architecture", fixtures.architectures())
def test_imported_checkpoint_detects_as_the_reference(architecture, tmp_path):
    imported, columns = import_fixture(architecture, tmp_path)
    reference = fixtures.outputs(architecture)
    result = imported.model(tf.constant(reference["images"]),
                            tf.constant(our_image_info(reference["image_info"])),
                            training=False)["detections"]
    ours = {key: value.numpy() for key, value in result.items()}
    if columns is not None:  # the reference's attribute outputs are our slots at their ids
        ours["attribute_probabilities"] = ours["attribute_probabilities"][..., columns]
    measured = fixtures.match_detections(reference, ours)
    print(architecture, measured)
    fixtures.assert_targets(measured)
    assert min(measured["detections"]) >= 5, measured


@pytest.mark.parametrize("architecture", fixtures.architectures())
def test_preprocessing_equals_the_reference(architecture):
    meta = fixtures.metadata(architecture)
    reference = fixtures.outputs(architecture)
    from model.checkpoint_import import reference_config

    config = reference_config.experiment_config(
        reference_config.read_yaml(fixtures.config_path(architecture)), meta["family"],
        meta["image_size"])
    for index, photo in enumerate(meta["images"]):
        path = os.path.join(SHARED_FIXTURES, photo)
        if not os.path.exists(path):
            pytest.skip(f"{path} is not here (../shared/fixtures is not part of a clone)")
        with open(path, "rb") as stream:
            image, info = preprocess(tf.constant(stream.read()), meta["image_size"],
                                     config.model.preprocessing)
        np.testing.assert_allclose(info.numpy(), our_image_info(reference["image_info"])[index],
                                   rtol=1e-6)
        np.testing.assert_allclose(image.numpy(), reference["images"][index], atol=2e-5)

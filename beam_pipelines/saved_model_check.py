"""Launcher-side check of ``--model``: reads ``saved_model.pb`` and the variables index, loads no weights.

A missing directory, a file that is not a SavedModel, a SavedModel without the
signature prediction needs, or one whose variables are incomplete (index missing
or unreadable, a data shard missing or shorter than the index says) stops the
launcher with one line, before any worker starts.
"""
import dataclasses
from typing import Dict, Optional

from apache_beam.io.filesystems import FileSystems
from tensorflow.core.framework import types_pb2
from tensorflow.core.protobuf import saved_model_pb2

from beam_pipelines import bundle_index

IMAGE_SIGNATURE = "serving_default"
IMAGE_INPUT = "image_bytes"
EXAMPLE_SIGNATURE = "serve_examples"
EXAMPLE_INPUT = "examples"
REQUIRED_OUTPUTS = ("num_detections", "detection_boxes", "detection_classes", "detection_scores",
                    "detection_masks", "detection_attributes", "image_info")
SERVING_TAG = "serve"
VARIABLES_DIR = "variables"
VARIABLES_PREFIX = "variables"  # variables/variables.index, variables/variables.data-*


class ModelError(ValueError):
    """``--model`` cannot serve prediction; the message names the path and the problem."""


@dataclasses.dataclass(frozen=True)
class SignatureInfo:
    """What prediction needs to know of a signature; ``max_detections`` is None when not static."""
    name: str
    input_name: str
    max_detections: Optional[int]


def _read_saved_model(path: str) -> saved_model_pb2.SavedModel:
    pb_path = FileSystems.join(path, "saved_model.pb")
    try:
        exists = FileSystems.exists(pb_path)
    except Exception as exc:  # an unusable scheme or bucket
        raise ModelError(f"--model {path}: cannot be read ({exc})") from None
    if not exists:
        what = "does not exist" if not FileSystems.exists(path) and not FileSystems.match(
            [FileSystems.join(path, "*")])[0].metadata_list else "has no saved_model.pb"
        raise ModelError(f"--model {path} {what}: expected a SavedModel directory "
                         "(python -m model.export --output DIR)")
    with FileSystems.open(pb_path, compression_type="uncompressed") as stream:
        data = stream.read()
    try:
        return saved_model_pb2.SavedModel.FromString(data)
    except Exception:
        raise ModelError(f"--model {path}: saved_model.pb is not a SavedModel protocol buffer") from None


def check_variables(path: str) -> None:
    """Raises ModelError unless ``variables/`` holds a readable index and every data
    shard it names, each at least as long as the tensors the index places in it."""
    directory = FileSystems.join(path, VARIABLES_DIR)
    index_name = f"{VARIABLES_DIR}/{VARIABLES_PREFIX}.index"
    index_path = FileSystems.join(directory, VARIABLES_PREFIX + ".index")
    if not FileSystems.exists(index_path):
        raise ModelError(f"--model {path}: {index_name} is missing, so its weights cannot be "
                         "loaded (export the model again)")
    try:
        with FileSystems.open(index_path, compression_type="uncompressed") as stream:
            data = stream.read()
        num_shards, needed = bundle_index.shard_extents(data)
    except (bundle_index.BundleIndexError, OSError) as exc:
        raise ModelError(f"--model {path}: {index_name} is not a readable variables index "
                         f"({exc})") from None
    for shard in range(num_shards):
        name = bundle_index.shard_name(VARIABLES_PREFIX, shard, num_shards)
        shard_path = FileSystems.join(directory, name)
        if not FileSystems.exists(shard_path):
            raise ModelError(f"--model {path}: {VARIABLES_DIR}/{name} is missing "
                             f"({index_name} names {num_shards} data shard(s))")
        size = FileSystems.get_filesystem(shard_path).size(shard_path)
        if size < needed[shard]:
            raise ModelError(f"--model {path}: {VARIABLES_DIR}/{name} is truncated: the index "
                             f"needs {needed[shard]} bytes, the file has {size}")


def check_signature(path: str, signature: str, input_name: str) -> SignatureInfo:
    """Returns the signature's details, or raises ModelError saying what is wrong
    (with the signature, or with the variables: ``check_variables``)."""
    saved_model = _read_saved_model(path)
    signatures: Dict = {}
    for meta_graph in saved_model.meta_graphs:
        if SERVING_TAG in meta_graph.meta_info_def.tags:
            signatures = dict(meta_graph.signature_def)
    if signature not in signatures:
        raise ModelError(f"--model {path} has no '{signature}' signature "
                         f"(it has: {', '.join(sorted(signatures)) or 'none'})")
    definition = signatures[signature]
    inputs = dict(definition.inputs)
    if list(inputs) != [input_name] or inputs[input_name].dtype != types_pb2.DT_STRING:
        found = ", ".join(f"{name}:{types_pb2.DataType.Name(spec.dtype)}" for name, spec in inputs.items())
        raise ModelError(f"--model {path}: signature '{signature}' must take one string input "
                         f"'{input_name}', it takes {found or 'nothing'}")
    missing = [name for name in REQUIRED_OUTPUTS if name not in definition.outputs]
    if missing:
        raise ModelError(f"--model {path}: signature '{signature}' lacks outputs {', '.join(missing)}")
    box_dims = definition.outputs["detection_boxes"].tensor_shape.dim
    max_detections = box_dims[1].size if len(box_dims) == 3 and box_dims[1].size > 0 else None
    check_variables(path)
    return SignatureInfo(signature, input_name, max_detections)

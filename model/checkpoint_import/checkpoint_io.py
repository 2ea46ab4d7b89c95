"""Name-based (TF1-style) checkpoints: list, read and write tensors by name, local or gs://."""
from typing import Dict, Mapping, Tuple

import numpy as np
import tensorflow as tf

Shape = Tuple[int, ...]


def variable_shapes(prefix: str) -> Dict[str, Shape]:
    """{tensor name: shape} of every tensor in the checkpoint ``prefix`` (or its directory)."""
    reader = tf.train.load_checkpoint(prefix)
    return {name: tuple(shape) for name, shape in reader.get_variable_to_shape_map().items()}


def read_tensors(prefix: str, names) -> Dict[str, np.ndarray]:
    reader = tf.train.load_checkpoint(prefix)
    return {name: reader.get_tensor(name) for name in names}


def write_checkpoint(prefix: str, tensors: Mapping[str, np.ndarray]) -> str:
    """Writes ``PREFIX.index`` + ``PREFIX.data-00000-of-00001`` holding ``tensors`` under
    their names, exactly as ``tf.compat.v1.train.Saver`` names graph variables."""
    names = sorted(tensors)
    tf.raw_ops.SaveV2(prefix=prefix, tensor_names=names, shape_and_slices=[""] * len(names),
                      tensors=[tf.constant(tensors[name]) for name in names])
    return prefix

"""Errors of the records met while training or evaluating, as one line.

The launcher's framing check (``model.dataset.tfrecord_framing``) refuses truncated and garbled
shards before anything starts, but it reads only the record headers (of a remote file, only its
ends): a record whose data checksum fails, or a shard garbled in the middle on GCS, is met by
TensorFlow mid-run, as a ``DataLossError`` that names an offset and no file.

Records whose contents do not fit the label map fail the input pipeline with an assertion
(``model.data.parser.UNKNOWN_CATEGORY``: a category id the label map lacks;
``model.record_schema.ATTRIBUTES_SIZE``: attribute bytes that are not objects x attributes);
those become one line naming the record's source_id.
"""
import re
from typing import List, Optional

import tensorflow as tf

from model.data.parser import UNKNOWN_CATEGORY
from model.dataset import tfrecord_framing
from model.record_schema import ATTRIBUTES_SIZE

# An assertion's message: "assertion failed: [first words: image/source_id] [ID] [...] ...".
_ASSERTION = re.compile(r"assertion failed: \[([^\]]*)\] \[([^\]]*)\]((?: \[[^\]]*\])*)")


def is_data_error(error: BaseException) -> bool:
    """A fault of the records, not of the job: a corrupt TFRecord (``DataLossError``) or a
    record that is not a tf.Example (ParseExample's ``InvalidArgumentError``). Out of memory,
    a lost TPU and every other error are not."""
    if isinstance(error, tf.errors.DataLossError):
        return True
    return isinstance(error, tf.errors.InvalidArgumentError) and \
        "Could not parse example input" in str(error)


def tf_message(error: tf.errors.OpError) -> str:
    """TensorFlow's message, first line, without the graph-node prefix and op suffix."""
    message = str(error.message).strip().split("\n")[0]
    message = message.split("}} ", 1)[-1]
    return message.split(" [[")[0].split(" [Op:")[0].strip()


def locate(files: List[str]) -> Optional[str]:
    """The first fault (file and offset) among local ``files``, every record's data checksum
    read; None when all are whole or any is remote (reading a remote dataset whole is left to
    ``python -m model.dataset.tfrecord_framing``)."""
    if not files or not all(tfrecord_framing.is_local(name) for name in files):
        return None
    try:
        tfrecord_framing.check_files(files, verify_data=True)
    except tfrecord_framing.FramingError as error:
        return str(error)
    return None


def content_error(error: BaseException) -> Optional[str]:
    """What a record's label-map assertion (unknown category id, attribute size) says, as
    "record with image/source_id ID has ...: WHAT"; None for any other error."""
    if not isinstance(error, tf.errors.InvalidArgumentError):
        return None
    message = str(error.message)
    if UNKNOWN_CATEGORY not in message and ATTRIBUTES_SIZE not in message:
        return None
    match = _ASSERTION.search(message)
    if not match:
        return tf_message(error)
    head, source_id, rest = match.groups()
    details = " ".join(part.strip("[]") for part in re.findall(r"\[[^\]]*\]", rest))
    return f"record with image/source_id {source_id} {details}: {head.split(':')[0]}"


def one_line(error: BaseException, flag: str, pattern: str) -> Optional[str]:
    """The one-line report of a data error met reading ``pattern`` (given as ``flag``): the
    file and byte offset when the files matched locate it, else TensorFlow's message and how
    to find the file; for a record that does not fit the label map, which record and why.
    None for an error that is not a data error."""
    content = content_error(error)
    if content:
        return f"{flag} {pattern}: {content}"
    if not is_data_error(error):
        return None
    found = locate(sorted(tf.io.gfile.glob(pattern)))
    if found:
        return f"{flag}: {found}"
    return (f"{flag} {pattern}: a record cannot be read ({tf_message(error)}); "
            f"python -m model.dataset.tfrecord_framing '{pattern}' names the file")

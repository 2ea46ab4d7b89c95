"""model.dataset.tfrecord_framing: records written by TensorFlow, damaged by hand, checked on
local files and through a TensorFlow file system that is not local (``ram://``, read the way
gs:// is: the first header and the tail, the whole file when the tail does not prove the end)."""
import uuid

import numpy as np
import pytest
import tensorflow as tf

from model.dataset import tfrecord_framing
from model.dataset.tfrecord_framing import FramingError, check_file

SIZES = [3000, 50, 7000, 1, 12000, 400]


def _records(sizes=SIZES, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.bytes(size) for size in sizes]


def _tfrecord_bytes(records):
    path = f"ram://framing-{uuid.uuid4().hex}/written.tfrecord"
    with tf.io.TFRecordWriter(path) as writer:
        for record in records:
            writer.write(record)
    with tf.io.gfile.GFile(path, "rb") as stream:
        return stream.read()


def _starts(records):
    return list(np.cumsum([0] + [len(record) + 16 for record in records]))


def _damaged(kind):
    """(file bytes, byte offset of the fault or None, words of the FramingError)."""
    records = _records()
    data = _tfrecord_bytes(records)
    starts = _starts(records)
    if kind == "whole":
        return data, None, None
    if kind == "empty":
        return b"", None, None
    if kind == "truncated_in_data":
        return data[:starts[4] + 12 + 500], starts[4], "truncated record: its header claims 12000"
    if kind == "truncated_in_header":
        return data[:starts[4] + 7], starts[4], "7 bytes after the last whole record"
    if kind == "truncated_in_footer":
        return data[:starts[-1] - 2], starts[-2], "truncated record"
    if kind == "appended":
        return data + b"these bytes are not a record" * 10, starts[-1], "no record header"
    if kind == "garbled_length":
        garbled = bytearray(data)
        garbled[starts[2] + 1] ^= 0x40
        return bytes(garbled), starts[2], "its length checksum does not match"
    raise ValueError(kind)


def _local(tmp_path, data):
    path = str(tmp_path / "shard.tfrecord")
    with open(path, "wb") as stream:
        stream.write(data)
    return path


def _remote(data):
    path = f"ram://framing-{uuid.uuid4().hex}/shard.tfrecord"
    with tf.io.gfile.GFile(path, "wb") as stream:
        stream.write(data)
    return path


KINDS = ["whole", "empty", "truncated_in_data", "truncated_in_header", "truncated_in_footer",
         "appended", "garbled_length"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("where, tail_bytes", [("local", None), ("remote", 1 << 20),
                                               ("remote", 14000), ("remote", 2000)])
def test_each_fault_is_found_at_its_offset(tmp_path, kind, where, tail_bytes):
    data, offset, words = _damaged(kind)
    path = _local(tmp_path, data) if where == "local" else _remote(data)
    options = {} if tail_bytes is None else {"tail_bytes": tail_bytes}
    if where == "remote" and kind == "garbled_length" and len(data) > tail_bytes:
        # A header garbled in the middle of a remote file is not looked for (module docstring).
        check_file(path, **options)
        return
    if offset is None:
        check_file(path, **options)
        check_file(path, verify_data=True, **options)
        return
    with pytest.raises(FramingError) as error:
        check_file(path, **options)
    assert error.value.offset == offset and error.value.path == path
    assert str(error.value).startswith(f"{path} at byte offset {offset}: ")
    assert words in str(error.value)


def test_tensorflow_reads_what_passes_and_fails_on_what_is_refused(tmp_path):
    for kind in ("whole", "empty", "truncated_in_data", "appended", "garbled_length"):
        data, offset, _ = _damaged(kind)
        path = _local(tmp_path, data)
        if offset is None:
            assert len(list(tf.data.TFRecordDataset(path))) == (len(SIZES) if data else 0)
        else:
            with pytest.raises(tf.errors.DataLossError):
                list(tf.data.TFRecordDataset(path))
    # A header cut short is dropped by TensorFlow without a word: a record lost, refused here.
    data, _, _ = _damaged("truncated_in_header")
    assert len(list(tf.data.TFRecordDataset(_local(tmp_path, data)))) == 4


def test_a_flipped_data_byte_is_found_only_when_the_data_is_read(tmp_path):
    records = _records()
    data = bytearray(_tfrecord_bytes(records))
    data[_starts(records)[2] + 12 + 100] ^= 1
    for path in (_local(tmp_path, bytes(data)), _remote(bytes(data))):
        check_file(path, tail_bytes=2000)
        with pytest.raises(FramingError, match="data checksum does not match") as error:
            check_file(path, verify_data=True)
        assert error.value.offset == _starts(records)[2]


def test_the_tail_proves_the_end_only_with_a_whole_last_record():
    records = _records()
    data = _tfrecord_bytes(records)
    size = len(data)
    assert tfrecord_framing.tail_ends_in_a_record(data[-1000:], size)
    assert tfrecord_framing.tail_ends_in_a_record(data[-416:], size)  # exactly the last record
    assert not tfrecord_framing.tail_ends_in_a_record(data[-415:], size)  # a byte short of it
    assert not tfrecord_framing.tail_ends_in_a_record(data[-1000:-3], size - 3)
    appended = data + b"x" * 20
    assert not tfrecord_framing.tail_ends_in_a_record(appended[-1000:], len(appended))
    flipped = bytearray(data)
    flipped[-10] ^= 1
    assert not tfrecord_framing.tail_ends_in_a_record(bytes(flipped[-1000:]), size)


def test_the_command_line_checks_every_record(tmp_path, capsys):
    good = _local(tmp_path, _damaged("whole")[0])
    assert tfrecord_framing.main([good]) == 0
    bad_dir = tmp_path / "bad"
    bad_dir.mkdir()
    bad = _local(bad_dir, _damaged("appended")[0])
    assert tfrecord_framing.main([good, str(bad_dir / "*.tfrecord"), str(tmp_path / "none-*")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[0].startswith(f"{bad} at byte offset ") and "none-* matches no files" in lines[1]

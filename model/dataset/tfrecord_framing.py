"""The framing of TFRecord files, checked before a job reads them (no TensorFlow graph).

A TFRecord file is a sequence of records, each
  [uint64 length][uint32 masked crc32c of the 8 length bytes][length data bytes]
  [uint32 masked crc32c of the data]
(little-endian). A file that ends inside a record (truncated), holds bytes after its last record
(garbage appended, a partial header) or a header whose length checksum fails (garbled) is refused
with a ``FramingError`` naming the file, the byte offset and what is wrong there. An empty file is
a valid file of no records, as TensorFlow reads it. TensorFlow itself stops with a bare
``DataLossError`` (no file name) at such a fault, mid-training, and silently drops a record whose
header was cut short; the check is stricter than that.

What is read, per file:
- A local file (no ``scheme://``, or ``file://``): every record header, found with seeks
  (``os.pread`` of 12 bytes per record), none of the data: ~2 ms for a shard of 1,000 records
  of ~100 KB in the page cache, 50-100 ms from disk (README, ``python -m tpu.train``).
- A remote file (``gs://`` and every other scheme, read with ``tf.io.gfile``), where one seek costs
  one request: the first record header and the last ``TAIL_BYTES`` of the file (two reads), which
  must end in a record whose header checksum holds, whose length ends it exactly at the end of the
  file and whose data checksum holds. When the tail does not prove that (the last record is larger
  than the window, or the file is truncated or has bytes appended), the whole file is walked in
  sequential reads of ``CHUNK_BYTES``, so a fault at the end is always reported at its offset; a
  good file pays that only when its last record is over ``TAIL_BYTES``. A garbled header in the
  middle of a remote file is not looked for; training then stops at it with one line
  (``tpu.train``).
``check_file(..., verify_data=True)`` (``python -m model.dataset.tfrecord_framing GLOB``) walks
every record of the file and checks the data checksums too, reading everything.

The checksums need ``google_crc32c`` (installed with apache-beam[gcp]'s google-cloud-storage);
without it only the lengths are checked against the file's size.
"""
import os
import struct
import sys
from typing import Callable, Iterable, List, Optional, Sequence

import numpy as np

try:
    import google_crc32c
except ImportError:  # pragma: no cover - installed with apache-beam[gcp]
    google_crc32c = None

HEADER_BYTES = 12  # uint64 length + uint32 masked crc of the length
FOOTER_BYTES = 4  # uint32 masked crc of the data
TAIL_BYTES = 4 << 20  # remote files: the window at the end that must hold the last record
CHUNK_BYTES = 16 << 20  # remote files: one sequential read when the whole file is walked
_MASK_DELTA = 0xA282EAD8

ReadAt = Callable[[int, int], bytes]  # (offset, count) -> at most count bytes


class FramingError(ValueError):
    """A file that is not a sequence of whole TFRecords; ``str`` names the file and offset."""

    def __init__(self, path: str, offset: int, problem: str):
        super().__init__(f"{path} at byte offset {offset}: {problem}")
        self.path, self.offset, self.problem = path, offset, problem


def masked_crc32c(data: bytes) -> int:
    crc = google_crc32c.value(data)
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + _MASK_DELTA) & 0xFFFFFFFF


def can_verify_checksums() -> bool:
    return google_crc32c is not None


def is_local(path: str) -> bool:
    return "://" not in path or path.startswith("file://")


def _header_problem(header: bytes, offset: int, size: int) -> Optional[str]:
    """Why the 12 bytes at ``offset`` do not start a record of a ``size``-byte file; None if
    they do."""
    if len(header) < HEADER_BYTES:
        return (f"{len(header)} bytes after the last whole record, not a record header "
                f"(truncated header or bytes appended)")
    length, length_crc = struct.unpack("<QI", header)
    if google_crc32c is not None and masked_crc32c(header[:8]) != length_crc:
        return "no record header (its length checksum does not match: garbled or appended bytes)"
    remaining = size - offset - HEADER_BYTES - FOOTER_BYTES
    if length > remaining:
        return (f"truncated record: its header claims {length} data bytes, the file holds "
                f"{max(remaining, 0)} more")
    return None


def walk(read_at: ReadAt, size: int, path: str, verify_data: bool = False) -> int:
    """Checks every record header from the start of a ``size``-byte file (and every data
    checksum with ``verify_data``); returns the record count or raises FramingError."""
    offset, count = 0, 0
    while offset < size:
        header = read_at(offset, HEADER_BYTES)
        problem = _header_problem(header, offset, size)
        if problem:
            raise FramingError(path, offset, problem)
        length = struct.unpack("<Q", header[:8])[0]
        if verify_data and google_crc32c is not None:
            body = read_at(offset + HEADER_BYTES, length + FOOTER_BYTES)
            if len(body) < length + FOOTER_BYTES or \
                    masked_crc32c(body[:length]) != struct.unpack("<I", body[length:])[0]:
                raise FramingError(path, offset, "corrupted record (its data checksum does not "
                                                 "match)")
        offset += HEADER_BYTES + length + FOOTER_BYTES
        count += 1
    return count


def tail_ends_in_a_record(tail: bytes, size: int) -> bool:
    """Whether the last ``len(tail)`` bytes of a ``size``-byte file end in one whole record: a
    header whose length ends it exactly at the end of the file, whose length checksum holds
    and whose data checksum holds. Needs the checksums (False without them)."""
    if google_crc32c is None or len(tail) < HEADER_BYTES + FOOTER_BYTES:
        return False
    start = size - len(tail)
    last = len(tail) - HEADER_BYTES - FOOTER_BYTES  # the last offset a record could start at
    candidates = []
    for align in range(8):  # the little-endian uint64 at every offset, as 8 strided views
        lengths = np.frombuffer(tail, "<u8", count=(last - align) // 8 + 1, offset=align)
        offsets = align + 8 * np.arange(len(lengths), dtype=np.int64)
        needed = (size - start - HEADER_BYTES - FOOTER_BYTES - offsets).astype(np.uint64)
        candidates.extend(offsets[lengths == needed].tolist())
    for at in sorted(candidates, reverse=True):
        header = tail[at:at + HEADER_BYTES]
        length, length_crc = struct.unpack("<QI", header)
        data = tail[at + HEADER_BYTES:at + HEADER_BYTES + length]
        if masked_crc32c(header[:8]) == length_crc and \
                masked_crc32c(data) == struct.unpack("<I", tail[-FOOTER_BYTES:])[0]:
            return True
    return False


class _ChunkedReader:
    """``read_at`` over a stream with seek/read, serving reads from one CHUNK_BYTES buffer so
    that walking the headers of a remote file reads it sequentially in large requests."""

    def __init__(self, stream, chunk: int = CHUNK_BYTES):
        self._stream, self._chunk = stream, chunk
        self._start, self._buffer = 0, b""

    def __call__(self, offset: int, count: int) -> bytes:
        end = self._start + len(self._buffer)
        if not (self._start <= offset and offset + count <= end):
            self._stream.seek(offset)
            self._start, self._buffer = offset, self._stream.read(max(count, self._chunk))
        return self._buffer[offset - self._start:offset - self._start + count]


def _check_local(path: str, verify_data: bool) -> None:
    local = path[len("file://"):] if path.startswith("file://") else path
    with open(local, "rb") as stream:
        size = os.fstat(stream.fileno()).st_size
        walk(lambda offset, count: os.pread(stream.fileno(), count, offset), size, path,
             verify_data)


def _check_remote(path: str, verify_data: bool, tail_bytes: int) -> None:
    import tensorflow as tf  # the remote file systems (gs://, ...) are TensorFlow's

    size = tf.io.gfile.stat(path).length
    with tf.io.gfile.GFile(path, "rb") as stream:
        if verify_data or size <= tail_bytes:
            walk(_ChunkedReader(stream), size, path, verify_data)
            return
        first = stream.read(HEADER_BYTES)
        problem = _header_problem(first, 0, size)
        if problem:
            raise FramingError(path, 0, problem)
        stream.seek(size - tail_bytes)
        if not tail_ends_in_a_record(stream.read(tail_bytes), size):
            walk(_ChunkedReader(stream), size, path)


def check_file(path: str, verify_data: bool = False, tail_bytes: int = TAIL_BYTES) -> None:
    """Raises FramingError unless ``path`` is whole TFRecords (module docstring: what is read;
    ``tail_bytes``: the window at the end of a remote file)."""
    if is_local(path):
        _check_local(path, verify_data)
    else:
        _check_remote(path, verify_data, tail_bytes)


def check_files(paths: Iterable[str], verify_data: bool = False) -> None:
    """check_file on each path in name order; raises the first FramingError."""
    for path in sorted(paths):
        check_file(path, verify_data)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """python -m model.dataset.tfrecord_framing GLOB...: every record's framing and data
    checksum; one line per bad file, exit status 2 if any."""
    import tensorflow as tf

    patterns = list(sys.argv[1:] if argv is None else argv)
    if not patterns:
        print("usage: python -m model.dataset.tfrecord_framing GLOB...", file=sys.stderr)
        return 2
    bad: List[str] = []
    for pattern in patterns:
        paths = sorted(tf.io.gfile.glob(pattern))
        if not paths:
            bad.append(f"{pattern} matches no files")
        for path in paths:
            try:
                check_file(path, verify_data=True)
            except FramingError as error:
                bad.append(str(error))
    for line in bad:
        print(line, file=sys.stderr)
    return 2 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

"""Reads a TensorBundle index (``variables/variables.index`` of a SavedModel) from its bytes.

The index is a LevelDB-format table: data blocks of prefix-compressed
``key -> value`` entries, an index block pointing at them and a 48-byte footer
(two block handles and a magic number). Each block is followed by a compression
byte and a masked CRC-32C of the block and that byte. The entry with the empty
key is a ``BundleHeaderProto`` (number of data shards, endianness); every other
key is a tensor name whose value is a ``BundleEntryProto`` (shard id, offset and
size of the tensor's bytes in ``PREFIX.data-SSSSS-of-NNNNN``).

Only the index is read: this is how the launcher checks that the data shards
are complete without loading any weights.
"""
import struct
from typing import Dict, Iterator, Tuple

from google.protobuf.message import DecodeError
from tensorflow.core.protobuf import tensor_bundle_pb2

_MAGIC = 0xDB4775248B80FB57
_FOOTER_SIZE = 48
_TRAILER_SIZE = 5  # compression type byte + masked CRC-32C
_NO_COMPRESSION = 0
_CRC_MASK_DELTA = 0xA282EAD8
_HEADER_KEY = b""


class BundleIndexError(ValueError):
    """The bytes are not a complete, consistent TensorBundle index; the message says where."""


def _crc32c_table():
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_CRC_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), as LevelDB tables use."""
    crc = 0xFFFFFFFF
    table = _CRC_TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _masked(crc: int) -> int:
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + _CRC_MASK_DELTA) & 0xFFFFFFFF


def _varint(data: bytes, pos: int, end: int) -> Tuple[int, int]:
    value = shift = 0
    while pos < end and shift < 64:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
    raise BundleIndexError(f"bad varint at byte {pos}")


def _block(data: bytes, handle: bytes, what: str) -> bytes:
    offset, pos = _varint(handle, 0, len(handle))
    size, _ = _varint(handle, pos, len(handle))
    end = offset + size
    footer = len(data) - _FOOTER_SIZE
    if end + _TRAILER_SIZE > footer:
        raise BundleIndexError(f"{what} at byte {offset} ({size} bytes) runs past the end "
                               f"of the blocks (byte {footer})")
    contents = data[offset:end]
    kind = data[end]
    (stored,) = struct.unpack("<I", data[end + 1:end + _TRAILER_SIZE])
    if _masked(crc32c(contents + bytes([kind]))) != stored:
        raise BundleIndexError(f"{what} at byte {offset} fails its checksum")
    if kind != _NO_COMPRESSION:
        raise BundleIndexError(f"{what} at byte {offset} is compressed (type {kind})")
    return contents


def _entries(block: bytes, what: str) -> Iterator[Tuple[bytes, bytes]]:
    if len(block) < 4:
        raise BundleIndexError(f"{what} is shorter than its restart count")
    (restarts,) = struct.unpack("<I", block[-4:])
    limit = len(block) - 4 - 4 * restarts
    if limit < 0:
        raise BundleIndexError(f"{what} claims {restarts} restart points in {len(block)} bytes")
    key, pos = b"", 0
    while pos < limit:
        shared, pos = _varint(block, pos, limit)
        unshared, pos = _varint(block, pos, limit)
        value_size, pos = _varint(block, pos, limit)
        if shared > len(key) or pos + unshared + value_size > limit:
            raise BundleIndexError(f"{what} has an entry running past its end at byte {pos}")
        key = key[:shared] + block[pos:pos + unshared]
        pos += unshared
        yield key, block[pos:pos + value_size]
        pos += value_size


def read_index(data: bytes) -> Tuple[tensor_bundle_pb2.BundleHeaderProto,
                                     Dict[str, tensor_bundle_pb2.BundleEntryProto]]:
    """-> (header, {tensor name: entry}); raises BundleIndexError."""
    if len(data) < _FOOTER_SIZE:
        raise BundleIndexError(f"{len(data)} bytes, shorter than a table footer ({_FOOTER_SIZE})")
    footer = data[-_FOOTER_SIZE:]
    if struct.unpack("<Q", footer[-8:])[0] != _MAGIC:
        raise BundleIndexError("no table magic number at its end")
    _, pos = _varint(footer, 0, 40)   # meta-index block offset
    _, pos = _varint(footer, pos, 40)  # and size: unused by TensorBundle
    index_block = _block(data, footer[pos:40], "the index block")
    header = None
    entries: Dict[str, tensor_bundle_pb2.BundleEntryProto] = {}
    for _, handle in _entries(index_block, "the index block"):
        block = _block(data, handle, "a data block")
        for key, value in _entries(block, "a data block"):
            try:
                if key == _HEADER_KEY:
                    header = tensor_bundle_pb2.BundleHeaderProto.FromString(value)
                else:
                    entries[key.decode("utf-8", "replace")] = (
                        tensor_bundle_pb2.BundleEntryProto.FromString(value))
            except DecodeError:
                raise BundleIndexError(f"the entry {key!r} is not a bundle protocol buffer") from None
    if header is None:
        raise BundleIndexError("no header entry")
    return header, entries


def shard_name(prefix: str, shard: int, num_shards: int) -> str:
    return f"{prefix}.data-{shard:05d}-of-{num_shards:05d}"


def shard_extents(data: bytes) -> Tuple[int, Dict[int, int]]:
    """-> (number of shards, {shard id: bytes the index needs in that shard}), every
    shard of the header present in the dict; raises BundleIndexError."""
    header, entries = read_index(data)
    if header.num_shards < 1:
        raise BundleIndexError(f"the header names {header.num_shards} data shards")
    needed = {shard: 0 for shard in range(header.num_shards)}
    for name, entry in entries.items():
        if entry.shard_id not in needed:
            raise BundleIndexError(f"tensor {name!r} is in shard {entry.shard_id}, "
                                   f"of {header.num_shards}")
        needed[entry.shard_id] = max(needed[entry.shard_id], entry.offset + entry.size)
    return header.num_shards, needed

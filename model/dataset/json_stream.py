"""Streams the top level of a large COCO-style JSON document, with byte offsets.

``json.load`` of a Fashionpedia-size annotation file (45k images, 330k polygon
instances) needs several GB of Python objects. This reader walks the top-level
object with a bounded buffer: for the keys named in ``stream_keys`` (which must
hold arrays) it yields one array element at a time; every other top-level value
is yielded whole. Memory stays at about one chunk plus the largest element.

Each item carries the byte span of its text in the file, so a later reader can
``seek`` to a run of elements and parse just those (``read_elements``): that is
how the pipeline splits one huge file across workers.

The bytes are scanned as Latin-1, which maps every byte to one character, so
character positions are byte positions; an item whose text is not pure ASCII is
parsed again from its bytes as UTF-8, so values are exact either way.
"""
import dataclasses
import json
from typing import Any, BinaryIO, Collection, Iterator, List, Optional, Set

_WHITESPACE = " \t\n\r"


class JsonStreamError(ValueError):
    """The document is not valid JSON or not an object at the top level."""


@dataclasses.dataclass
class Item:
    """A top-level value or one element of a streamed array; ``start``/``end`` are byte offsets."""
    key: str
    value: Any
    start: int
    end: int


class _Reader:
    def __init__(self, stream: BinaryIO, chunk_size: int):
        self._stream = stream
        self._chunk_size = chunk_size
        self._buffer = ""
        self._pos = 0
        self._dropped = 0  # bytes discarded before self._buffer[0]
        self._eof = False
        self._decoder = json.JSONDecoder()

    def _fill(self, min_bytes: int) -> bool:
        """Appends at least ``min_bytes`` bytes unless the stream ends; False at EOF."""
        if self._eof:
            return False
        if self._pos > self._chunk_size:
            self._dropped += self._pos
            self._buffer = self._buffer[self._pos:]
            self._pos = 0
        wanted = max(min_bytes, self._chunk_size)
        added = 0
        while added < wanted:
            raw = self._stream.read(wanted - added)
            if not raw:
                self._eof = True
                return added > 0
            self._buffer += raw.decode("latin-1")
            added += len(raw)
        return True

    def offset(self) -> int:
        return self._dropped + self._pos

    def error(self, message: str) -> JsonStreamError:
        return JsonStreamError(f"{message} at byte {self.offset()}")

    def peek(self) -> str:
        """The next non-whitespace character ('' at end of input)."""
        while True:
            while self._pos < len(self._buffer) and self._buffer[self._pos] in _WHITESPACE:
                self._pos += 1
            if self._pos < len(self._buffer):
                return self._buffer[self._pos]
            if not self._fill(1):
                return ""

    def expect(self, char: str) -> None:
        found = self.peek()
        if found != char:
            raise self.error(f"expected {char!r} but found {found or 'end of input'!r}")
        self._pos += 1

    def value(self) -> tuple:
        """Decodes the next JSON value; returns (value, start byte, end byte)."""
        self.peek()
        grow = self._chunk_size
        while True:
            try:
                value, end = self._decoder.raw_decode(self._buffer, self._pos)
            except json.JSONDecodeError as exc:
                if self._fill(grow):
                    grow *= 2
                    continue
                raise JsonStreamError(f"{exc.msg} at byte {self._dropped + exc.pos}") from None
            # A number at the very end of the buffer may continue in the next chunk.
            if end >= len(self._buffer) and self._fill(grow):
                continue
            start = self._dropped + self._pos
            text = self._buffer[self._pos:end]
            if not text.isascii():
                value = _parse_utf8(text.encode("latin-1"), start)
            self._pos = end
            return value, start, self._dropped + end


def _parse_utf8(raw: bytes, offset: int) -> Any:
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise JsonStreamError(f"invalid UTF-8 at byte {offset + exc.start}") from None
    except json.JSONDecodeError as exc:
        raise JsonStreamError(f"{exc.msg} at byte {offset + exc.pos}") from None


def iter_top_level(
    stream: BinaryIO, stream_keys: Collection[str], chunk_size: int = 1 << 20,
    seen_keys: Optional[Set[str]] = None,
) -> Iterator[Item]:
    """Yields an Item per element of the arrays under ``stream_keys`` and per
    other top-level key, in document order.

    ``seen_keys``, when given, receives every top-level key, including those of
    empty streamed arrays (which yield nothing).

    Raises:
      JsonStreamError: on invalid JSON or UTF-8 (with the byte offset), a top
        level that is not an object, or a streamed key whose value is not an array.
    """
    reader = _Reader(stream, chunk_size)
    reader.expect("{")
    if reader.peek() == "}":
        reader.expect("}")
    else:
        while True:
            key, _, _ = reader.value()
            if not isinstance(key, str):
                raise reader.error("object key is not a string")
            reader.expect(":")
            if seen_keys is not None:
                seen_keys.add(key)
            if key in stream_keys:
                if reader.peek() != "[":
                    raise reader.error(f"top-level '{key}' must be an array")
                reader.expect("[")
                if reader.peek() == "]":
                    reader.expect("]")
                else:
                    while True:
                        yield Item(key, *reader.value())
                        if reader.peek() == "]":
                            reader.expect("]")
                            break
                        reader.expect(",")
            else:
                yield Item(key, *reader.value())
            if reader.peek() == "}":
                reader.expect("}")
                break
            reader.expect(",")
    if reader.peek() != "":
        raise reader.error("unexpected data after the top-level object")


def read_elements(stream: BinaryIO, start: int, end: int) -> List[Any]:
    """Parses the consecutive array elements whose text spans bytes [start, end).

    ``start`` is the first byte of one element and ``end`` the byte after the
    last, as reported by ``iter_top_level``; the separators between them are
    part of the span.
    """
    stream.seek(start)
    raw = stream.read(end - start)
    if len(raw) != end - start:
        raise JsonStreamError(f"file ends at byte {start + len(raw)}, expected data up to {end}")
    return _parse_utf8(b"[" + raw + b"]", start - 1)

"""Streams the top level of a large COCO-style JSON document.

``json.load`` of a Fashionpedia-size annotation file (45k images, 330k polygon
instances) needs several GB of Python objects. This reader walks the top-level
object with a bounded buffer: for the keys named in ``stream_keys`` (which must
hold arrays) it yields one array element at a time; every other top-level value
is yielded whole. Memory stays at about one chunk plus the largest element.
"""
import codecs
import json
from typing import Any, BinaryIO, Collection, Iterator, Optional, Set, Tuple

_WHITESPACE = " \t\n\r"


class JsonStreamError(ValueError):
    """The document is not valid JSON or not an object at the top level."""


class _Reader:
    def __init__(self, stream: BinaryIO, chunk_size: int):
        self._stream = stream
        self._chunk_size = chunk_size
        self._utf8 = codecs.getincrementaldecoder("utf-8")()
        self._buffer = ""
        self._pos = 0
        self._dropped = 0  # characters discarded before self._buffer[0]
        self._eof = False
        self._decoder = json.JSONDecoder()

    def _fill(self, min_chars: int) -> bool:
        """Appends at least ``min_chars`` characters unless the stream ends; False at EOF."""
        if self._eof:
            return False
        if self._pos > self._chunk_size:
            self._dropped += self._pos
            self._buffer = self._buffer[self._pos:]
            self._pos = 0
        wanted = max(min_chars, self._chunk_size)
        added = 0
        while added < wanted:
            raw = self._stream.read(wanted)
            if not raw:
                tail = self._utf8.decode(b"", final=True)
                self._buffer += tail
                self._eof = True
                return added + len(tail) > 0
            text = self._utf8.decode(raw)
            self._buffer += text
            added += len(text)
        return True

    def error(self, message: str) -> JsonStreamError:
        return JsonStreamError(f"{message} at character {self._dropped + self._pos}")

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

    def value(self) -> Any:
        """Decodes the next JSON value, reading more input as needed."""
        self.peek()
        grow = self._chunk_size
        while True:
            try:
                value, end = self._decoder.raw_decode(self._buffer, self._pos)
            except json.JSONDecodeError as exc:
                if self._fill(grow):
                    grow *= 2
                    continue
                raise JsonStreamError(
                    f"{exc.msg} at character {self._dropped + exc.pos}") from None
            # A number at the very end of the buffer may continue in the next chunk.
            if end >= len(self._buffer) and self._fill(grow):
                continue
            self._pos = end
            return value


def iter_top_level(
    stream: BinaryIO, stream_keys: Collection[str], chunk_size: int = 1 << 20,
    seen_keys: Optional[Set[str]] = None,
) -> Iterator[Tuple[str, Any]]:
    """Yields ``(key, element)`` for each element of the arrays under ``stream_keys``
    and ``(key, value)`` for every other top-level key, in document order.

    ``seen_keys``, when given, receives every top-level key, including those of
    empty streamed arrays (which yield nothing).

    Raises:
      JsonStreamError: on invalid JSON (with the character offset), a top level
        that is not an object, or a streamed key whose value is not an array.
    """
    reader = _Reader(stream, chunk_size)
    reader.expect("{")
    if reader.peek() == "}":
        reader.expect("}")
    else:
        while True:
            key = reader.value()
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
                        yield key, reader.value()
                        if reader.peek() == "]":
                            reader.expect("]")
                            break
                        reader.expect(",")
            else:
                yield key, reader.value()
            if reader.peek() == "}":
                reader.expect("}")
                break
            reader.expect(",")
    if reader.peek() != "":
        raise reader.error("unexpected data after the top-level object")

"""Finding and opening prediction and annotation files, local or gs://, through Beam's FileSystems."""
import io
import json
import sys
from typing import Any, Callable, List, Optional, Sequence

from apache_beam.io.filesystems import CompressionTypes, FileSystems

from model.evaluation.ground_truth import EvaluationInputError


class MissingFilesError(FileNotFoundError):
    """A pattern or path matched no file."""


def exit_status(run: Callable[[Optional[Sequence[str]]], Any],
                argv: Optional[Sequence[str]] = None) -> int:
    """Runs a command over prediction files: 0, or 2 after one ``error: ...`` line on stderr
    when its inputs are missing or not valid."""
    try:
        run(argv)
    except (EvaluationInputError, MissingFilesError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def matched_paths(patterns: Sequence[str]) -> List[str]:
    """Files matching each glob, sorted per pattern, patterns in the order given."""
    paths = []
    for pattern in patterns:
        found = sorted(m.path for m in FileSystems.match([pattern])[0].metadata_list)
        if not found:
            raise MissingFilesError(f"no file matches {pattern!r}")
        paths.extend(found)
    return paths


class _Decompressed(io.RawIOBase):
    """Beam's CompressedFile as a raw stream, which io.BufferedReader and io.TextIOWrapper
    accept (CompressedFile itself lacks ``readable`` and ``readinto``)."""

    def __init__(self, stream):
        super().__init__()
        self._stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self._stream.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._stream.close()
        super().close()


def open_text(path: str) -> io.TextIOWrapper:
    """A UTF-8 text stream; gzip and the other compressions Beam knows are detected from
    the extension (``.jsonl.gz`` from ``predict --compression gzip``)."""
    compression = CompressionTypes.detect_compression_type(path)
    if compression == CompressionTypes.UNCOMPRESSED:
        return io.TextIOWrapper(FileSystems.open(path, compression_type=compression),
                                encoding="utf-8")
    raw = FileSystems.open(path, compression_type=compression)
    return io.TextIOWrapper(io.BufferedReader(_Decompressed(raw)), encoding="utf-8")


def load_json(path: str) -> Any:
    if not FileSystems.exists(path):
        raise MissingFilesError(f"{path} does not exist")
    with open_text(path) as stream:
        return json.load(stream)


def write_json(path: str, value: Any) -> None:
    with FileSystems.create(path, mime_type="application/json") as stream:
        stream.write(json.dumps(value, indent=1, sort_keys=False).encode("utf-8"))

"""What an output prefix already holds: refused, or removed with ``--overwrite``, before a job.

A pipeline writing to PREFIX (``DIR/NAME``) owns exactly these names, local or gs://:

- its shards ``PREFIX`` + shard template + suffix, of any shard total (``PREFIX-00003-of-00008.jsonl``);
- the single files it names in full (the errors file, make_records' label map);
- the temporary directories Beam's file sinks create beside their prefix and delete when the write
  finishes, ``DIR/beam-temp-<last part of the sink's prefix>-<uuid1 hex>`` (``FileBasedSink``), so
  one left there is a run that was killed, or one still writing.

``check`` lists them with ``FileSystems.match`` of patterns fixed up to the prefix (on gs:// only
names starting with it are listed; locally Beam walks the prefix's directory) and keeps only names
of the owned forms exactly: ``out/p`` owns neither ``out/p2-00000-of-00001.jsonl`` nor
``out/beam-temp-p2-…`` nor ``out/p-errors-errors-…``. The errors sink's prefix is
``PREFIX-errors``, so its names are those a pipeline with that prefix would use: two such runs in
one directory collide whatever this module does. A prefix with glob characters is refused: Beam's
sinks glob their own paths when they finish and fail on it.
"""
import os
import re
import shutil
from dataclasses import dataclass, field
from typing import Callable, List, Tuple

from apache_beam.io.filesystems import FileSystems
from apache_beam.io.localfilesystem import LocalFileSystem

from beam_pipelines import image_paths

_TEMP_DIR = "beam-temp-{name}-[0-9a-f]{{32}}"  # filebasedsink: 'beam-temp-' + last + '-' + uuid1().hex
_SHOWN = 4  # names quoted in the refusal; the rest are counted


class OutputError(ValueError):
    """The output prefix holds earlier output, or cannot be written (below a file, glob characters)."""


@dataclass(frozen=True)
class Outputs:
    """What a pipeline writes for a prefix: the shards of its main sink (prefix + template +
    one of the suffixes it may use, e.g. with and without compression), single files, and the
    prefixes of its other Beam file sinks, as functions of the prefix. ``flag`` names the
    prefix in messages."""
    flag: str
    shard_template: str  # Beam's shard name template, e.g. -SSSSS-of-NNNNN
    shard_suffixes: Tuple[str, ...]
    files: Tuple[Callable[[str], str], ...] = ()
    other_sinks: Tuple[Callable[[str], str], ...] = ()


@dataclass
class Found:
    """Owned paths that exist: files, and Beam temp directories (with the files found in them)."""
    files: List[str] = field(default_factory=list)
    temp_dirs: List[str] = field(default_factory=list)
    temp_files: List[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.files or self.temp_dirs)


def add_overwrite_flag(parser) -> None:
    parser.add_argument("--overwrite", action="store_true",
                        help="Delete what an earlier run left under the output prefix (its shards "
                             "of any count, its other files, Beam temp directories) before the job "
                             "starts; without it such a prefix is refused.")


def check(outputs: Outputs, prefix: str, overwrite: bool) -> Found:
    """The owned paths that exist for ``prefix``. Raises OutputError when the prefix cannot be
    written (below a regular file, glob characters), or when something is there and
    ``overwrite`` is false."""
    _check_writable(outputs.flag, prefix)
    found = _existing(outputs, os.path.abspath(prefix) if _is_local(prefix) else prefix)
    if found and not overwrite:
        names = found.files + [path + "/" for path in found.temp_dirs]
        shown = ", ".join(names[:_SHOWN])
        more = f" and {len(names) - _SHOWN} more" if len(names) > _SHOWN else ""
        raise OutputError(f"{outputs.flag} {prefix} already holds output of an earlier run: "
                          f"{shown}{more}; pass --overwrite to delete it first, or choose another "
                          "prefix")
    return found


def remove(found: Found) -> None:
    """Deletes exactly what ``check`` found (a local temp directory with what it holds)."""
    paths = found.files + [path for path in found.temp_files if not _is_local(path)]
    if paths:
        FileSystems.delete(paths)
    for temp_dir in found.temp_dirs:
        if _is_local(temp_dir):
            shutil.rmtree(temp_dir)


def _is_local(path: str) -> bool:
    return isinstance(FileSystems.get_filesystem(path), LocalFileSystem)


def _check_writable(flag: str, prefix: str) -> None:
    """Beam's file sinks glob their own temp and final paths (``FileBasedSink`` finalize), so a
    prefix with glob characters fails after the job ran. A local prefix whose nearest existing
    ancestor is not a directory cannot be written."""
    if image_paths.is_glob(prefix):
        raise OutputError(f"{flag} {prefix}: an output prefix cannot contain *, ? or [ (Beam "
                          "matches its own output paths as globs)")
    if not _is_local(prefix):
        return  # object stores have no directories: gs://b/a.txt/p is a valid object name
    ancestor = os.path.dirname(os.path.abspath(prefix))
    while not os.path.exists(ancestor):
        ancestor = os.path.dirname(ancestor)
    if not os.path.isdir(ancestor):
        raise OutputError(f"{flag} {prefix}: {ancestor} is a file, not a directory")


def _shard_regex(prefix: str, template: str, suffix: str) -> str:
    """The regex of ``prefix`` + ``template`` + ``suffix`` for any shard number and total."""
    pattern = "".join(rf"\d{{{len(part)}}}" if re.fullmatch(r"S+|N+", part) else re.escape(part)
                      for part in re.split(r"(S+|N+)", template))
    return re.escape(prefix) + pattern + re.escape(suffix)


def _existing(outputs: Outputs, prefix: str) -> Found:
    """``prefix`` absolute when local (Beam lists a local pattern's directory, and ``p`` has none)."""
    directory, name = FileSystems.split(prefix)
    found = Found()
    # Both patterns are fixed up to the prefix's last part; names are then matched exactly.
    files = {make(prefix) for make in outputs.files}
    shard = re.compile("(?:" + "|".join(_shard_regex(prefix, outputs.shard_template, suffix)
                                        for suffix in outputs.shard_suffixes) + r")\Z")
    for metadata in FileSystems.match([prefix + "*"])[0].metadata_list:
        if metadata.path in files or shard.match(metadata.path):
            found.files.append(metadata.path)
    sinks = [name] + [FileSystems.split(make(prefix))[1] for make in outputs.other_sinks]
    temp_name = re.compile(
        "(?:" + "|".join(_TEMP_DIR.format(name=re.escape(sink)) for sink in sinks) + r")\Z")
    temp_pattern = FileSystems.join(directory, f"beam-temp-{name}*", "*")
    temp_dirs = set()
    for metadata in FileSystems.match([temp_pattern])[0].metadata_list:
        temp_dir = FileSystems.split(metadata.path)[0]
        if temp_name.match(FileSystems.split(temp_dir)[1]):
            temp_dirs.add(temp_dir)
            found.temp_files.append(metadata.path)
    if _is_local(prefix) and os.path.isdir(directory):  # an empty temp directory holds no file
        temp_dirs.update(os.path.join(directory, entry.name) for entry in os.scandir(directory)
                         if entry.is_dir(follow_symlinks=False) and temp_name.match(entry.name))
    found.files.sort()
    found.temp_dirs = sorted(temp_dirs)
    found.temp_files.sort()
    return found

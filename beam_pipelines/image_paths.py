"""Where image files are, and which files an input may read.

``--image_dir`` (make_records) and ``--images`` (predict) name either a
directory or a glob. The rule: a name that holds no glob character (``*``,
``?``, ``[``) or that names an existing directory is a directory; any other
name is a glob. A directory's files are matched with its name escaped, so
``photos[1]`` is the directory of that name, not a character class.

A directory's files are named by their path below it; a glob's by their path
below its fixed part (everything up to the last ``/`` before the first glob
character). The JSON's ``file_name``s are relative to that root.

Reads stay inside the root:

* ``confined_name``: a ``file_name`` must be a relative ``/``-separated path that
  stays inside the root after normalisation (``a/./b``, ``a//b`` and ``a/../b``
  are fine; ``../x``, ``/etc/x``, ``gs://other/x``, backslashes and NUL are not);
* ``check_inside``: a local file is read only if its real path (symlinks
  resolved) is inside the root's real path; a symlink to another file inside
  is fine. Object stores (gs://) have no symlinks.

Both raise ``InvalidImage(FILE_OUTSIDE_IMAGE_DIR)``.
"""
import dataclasses
import os
import posixpath
import re
import warnings
from typing import Any, Dict, Iterable, Optional, Tuple

from apache_beam.io.filesystems import FileSystems

from model.dataset.image_files import InvalidImage

FILE_OUTSIDE_IMAGE_DIR = "file_outside_image_dir"
_GLOB_CHARS = re.compile(r"[*?\[]")
# Beam compiles the escape of '[', '[[]', into the regex '[[]', which Python's re accepts
# (a set of one '[') with this FutureWarning; Beam's patterns have no other way to say '['.
warnings.filterwarnings("ignore", message="Possible nested set", category=FutureWarning,
                        module="apache_beam.io.filesystem")


def is_glob(image_dir: str) -> bool:
    """Whether the name holds a glob character (it may still name a directory: ``image_source``)."""
    return _GLOB_CHARS.search(image_dir) is not None


def escape(path: str) -> str:
    """``path`` as a Beam match pattern that matches itself only (``d[1]`` -> ``d[[]1]``).

    Beam's ``FileSystem.translate_pattern`` reads ``[c]`` as the character c, as
    fnmatch does; it has no other escape.
    """
    return _GLOB_CHARS.sub(lambda match: f"[{match.group(0)}]", path)


def _is_local(path: str) -> bool:
    return FileSystems.get_scheme(path) is None


def is_directory(path: str) -> bool:
    """An existing local directory, or an object-store prefix ``path/`` that holds an object."""
    if _is_local(path):
        return os.path.isdir(path)
    pattern = escape(path.rstrip("/")) + "/**"
    return bool(FileSystems.match([pattern], limits=[1])[0].metadata_list)


@dataclasses.dataclass(frozen=True)
class ImageSource:
    """How to find the images an input names.

    ``pattern``: what ``FileSystems.match`` / ``fileio.MatchFiles`` take;
    ``root``: matched paths are named by their path below it, and reads stay
    inside it; ``directory``: the input names a directory (``file_name``s are
    joined to it; no match is needed to find a named file).
    """
    name: str
    pattern: str
    root: str
    directory: bool


def image_source(image_dir: str) -> ImageSource:
    """Applies the directory-or-glob rule (the module docstring) to ``image_dir``.

    A name with glob characters is looked up (one listing) to see whether it
    names a directory.
    """
    match = _GLOB_CHARS.search(image_dir)
    if match is None or is_directory(image_dir):
        return ImageSource(image_dir, FileSystems.join(escape(image_dir), "*"), image_dir, True)
    fixed = image_dir[: match.start()]
    return ImageSource(image_dir, image_dir, fixed[: fixed.rfind("/") + 1], False)


def glob_and_root(image_dir: str) -> Tuple[str, str]:
    """(pattern to match, root that relative names are measured from), by ``image_source``.

    ``gs://b/photos/*/*.jpg`` -> (itself, ``gs://b/photos/``); a directory ``d``
    -> (``d/*``, ``d``).
    """
    source = image_source(image_dir)
    return source.pattern, source.root


def relative_path(path: str, root: str) -> str:
    """``path`` below ``root`` (which may or may not end with a slash)."""
    prefix = root.rstrip("/") + "/" if root else ""
    return path[len(prefix):] if prefix and path.startswith(prefix) else path


def _outside(reason: str) -> InvalidImage:
    return InvalidImage(FILE_OUTSIDE_IMAGE_DIR, reason)


def confined_name(file_name: str) -> str:
    """``file_name`` normalised (``a/./b`` -> ``a/b``); InvalidImage(FILE_OUTSIDE_IMAGE_DIR) unless
    it is a relative ``/``-separated path that stays inside the directory it is relative to."""
    if "\x00" in file_name:
        raise _outside(f"file_name {file_name!r} holds a NUL character")
    if "\\" in file_name:
        raise _outside(f"file_name {file_name!r} holds a backslash (separators are '/')")
    if FileSystems.get_scheme(file_name) is not None:
        raise _outside(f"file_name {file_name!r} is a URL, not a path relative to --image_dir")
    if file_name.startswith("/"):
        raise _outside(f"file_name {file_name!r} is an absolute path, not relative to --image_dir")
    normal = posixpath.normpath(file_name)
    if normal == "." or normal == ".." or normal.startswith("../"):
        raise _outside(f"file_name {file_name!r} leads outside --image_dir")
    return normal


def check_inside(path: str, root: str) -> None:
    """InvalidImage(FILE_OUTSIDE_IMAGE_DIR) when ``path``, a local file found below ``root``,
    has its real path outside ``root``'s. Real paths resolve every symlink, of the file and of
    the directories on the way; paths that are not local (gs://) pass.
    """
    if not _is_local(path):
        return
    real_root = os.path.realpath(root or os.curdir)
    real = os.path.realpath(path)
    if not real.startswith(real_root.rstrip(os.sep) + os.sep):
        raise _outside(f"{path} resolves to {real}, outside {real_root} (a symlink that leaves "
                       f"the image directory)")


def _file_name(entry: Any) -> Optional[str]:
    name = entry.get("file_name") if isinstance(entry, dict) else None
    return name if isinstance(name, str) and name else None


def _confined_or_none(name: Optional[str]) -> Optional[str]:
    if name is None:
        return None
    try:
        return confined_name(name)
    except InvalidImage:
        return None  # BuildAnnotatedRecords fails the entry with the code


def path_in_directory(keyed_entry: Tuple[int, Dict], image_dir: str) -> Tuple[int, Tuple[Dict, Optional[str]]]:
    """(image_id, entry) -> (image_id, (entry, image_dir/normalised file_name or None))."""
    image_id, entry = keyed_entry
    name = _confined_or_none(_file_name(entry))
    return image_id, (entry, FileSystems.join(image_dir, name) if name else None)


def key_by_file_name(keyed_entry: Tuple[int, Dict]) -> Tuple[Optional[str], Tuple[int, Dict]]:
    """Keyed by the normalised file_name (None when absent or not confined)."""
    return _confined_or_none(_file_name(keyed_entry[1])), keyed_entry


def attach_matched_paths(joined) -> Iterable[Tuple[int, Tuple[Dict, Optional[str]]]]:
    """(file_name, {'entries': [(id, entry)], 'paths': [path]}) -> (id, (entry, path or None)).

    Files that no entry names are ignored: they were matched, not read.
    """
    _, grouped = joined
    paths = list(grouped["paths"])
    for image_id, entry in grouped["entries"]:
        yield image_id, (entry, paths[0] if paths else None)

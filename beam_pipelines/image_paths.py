"""Where image files are: a directory the JSON's ``file_name``s are relative to,
or a glob whose matches are named by their path below the glob's fixed part.
"""
import re
from typing import Any, Dict, Iterable, Optional, Tuple

from apache_beam.io.filesystems import FileSystems

_GLOB_CHARS = re.compile(r"[*?\[]")


def is_glob(image_dir: str) -> bool:
    return _GLOB_CHARS.search(image_dir) is not None


def glob_and_root(image_dir: str) -> Tuple[str, str]:
    """(pattern to match, root that relative names are measured from).

    ``gs://b/photos/*/*.jpg`` -> (itself, ``gs://b/photos/``); a directory ``d``
    -> (``d/*``, ``d``).
    """
    match = _GLOB_CHARS.search(image_dir)
    if match:
        fixed = image_dir[: match.start()]
        return image_dir, fixed[: fixed.rfind("/") + 1]
    return FileSystems.join(image_dir, "*"), image_dir


def relative_path(path: str, root: str) -> str:
    """``path`` below ``root`` (which may or may not end with a slash)."""
    prefix = root.rstrip("/") + "/" if root else ""
    return path[len(prefix):] if prefix and path.startswith(prefix) else path


def _file_name(entry: Any) -> Optional[str]:
    name = entry.get("file_name") if isinstance(entry, dict) else None
    return name if isinstance(name, str) and name else None


def path_in_directory(keyed_entry: Tuple[int, Dict], image_dir: str) -> Tuple[int, Tuple[Dict, Optional[str]]]:
    """(image_id, entry) -> (image_id, (entry, image_dir/file_name or None))."""
    image_id, entry = keyed_entry
    name = _file_name(entry)
    return image_id, (entry, FileSystems.join(image_dir, name) if name else None)


def key_by_file_name(keyed_entry: Tuple[int, Dict]) -> Tuple[Optional[str], Tuple[int, Dict]]:
    return _file_name(keyed_entry[1]), keyed_entry


def attach_matched_paths(joined) -> Iterable[Tuple[int, Tuple[Dict, Optional[str]]]]:
    """(file_name, {'entries': [(id, entry)], 'paths': [path]}) -> (id, (entry, path or None)).

    Files that no entry names are ignored: they were matched, not read.
    """
    _, grouped = joined
    paths = list(grouped["paths"])
    for image_id, entry in grouped["entries"]:
        yield image_id, (entry, paths[0] if paths else None)

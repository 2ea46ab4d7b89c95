"""Deterministic image ids for images that come without annotations."""
import hashlib

_JSON_SAFE_BITS = 53  # integers below 2**53 survive a round trip through JSON doubles


def image_id_from_path(relative_path: str) -> int:
    """The first 53 bits of SHA-256 of the UTF-8 path relative to the input root.

    The same file under the same root always gets the same id, on any machine
    and runner; distinct paths collide with probability ~n^2 / 2^54.
    """
    digest = hashlib.sha256(relative_path.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") >> (64 - _JSON_SAFE_BITS)

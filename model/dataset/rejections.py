"""Rejected inputs and the JSON objects written for them to ``PREFIX-errors.jsonl``.

Each object has ``image_id``, ``filename``, a short machine-readable ``code``
and a human ``reason``; a skipped annotation also has ``annotation_id``, and a
failed annotated image ``num_annotations``. ``json_line`` is the one line each
object becomes in the errors file (keys sorted, so lines are reproducible).
"""
import json
from typing import Any, Dict, Optional


class Rejected(ValueError):
    """An input that cannot be used, with a short machine-readable ``code``."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def failed_image(image_id: Optional[Any], filename: Optional[str], code: str,
                 reason: str) -> Dict[str, Any]:
    return {"image_id": image_id, "filename": filename, "code": code, "reason": reason}


def skipped_annotation(image_id: Optional[Any], filename: Optional[str], annotation_id: Any,
                       code: str, reason: str) -> Dict[str, Any]:
    return {"image_id": image_id, "filename": filename, "annotation_id": annotation_id,
            "code": code, "reason": reason}


def json_line(record: Dict[str, Any]) -> str:
    """One error object -> its line in the errors file (no newline)."""
    return json.dumps(record, sort_keys=True)

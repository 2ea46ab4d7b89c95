"""Dead letters: the inputs a pipeline rejects, and the one file they are written to.

Every DoFn of make_records and predict sends what it cannot use to the tagged
output ``ERRORS`` as a ``model.dataset.rejections`` object; ``WriteDeadLetters``
flattens those PCollections and writes one JSON line per object to
``PREFIX-errors.jsonl``: one file without a shard name, so that its path is
known before the job runs, and so that no main output's sink can take it for
one of its own shards. (Before it renames its shards into place, a Beam file
sink deletes every existing ``PREFIX-*-of-NNNNN`` + suffix for the shard count
it wrote; a sharded ``PREFIX-errors-00000-of-00001.jsonl`` would match
predict's one-shard ``PREFIX-*-of-00001.jsonl`` and could be deleted by it.)
"""
from typing import Any, Optional

import apache_beam as beam
from apache_beam.pvalue import TaggedOutput

from beam_pipelines.pipeline_metrics import Counters
from model.dataset import rejections

ERRORS = "errors"
_SUFFIX = "-errors"
_EXTENSION = ".jsonl"
_UNSHARDED = ""  # Beam's shard name template for a single file named prefix + suffix


def errors_path(prefix: str) -> str:
    """The file ``WriteDeadLetters(prefix)`` writes."""
    return errors_sink_prefix(prefix) + _EXTENSION


def errors_sink_prefix(prefix: str) -> str:
    """The prefix of the errors file's Beam sink (which names its temp directory after it)."""
    return prefix + _SUFFIX


def failed_image(counters: Counters, image_id: Optional[Any], filename: Optional[str],
                 error: rejections.Rejected, **extra: Any) -> TaggedOutput:
    """Counts ``images_failed`` (and ``.code``) and returns the image's dead letter.

    ``extra`` adds fields to the object (make_records: ``num_annotations``).
    """
    counters.inc_coded("images_failed", error.code)
    letter = rejections.failed_image(image_id, filename, error.code, str(error))
    letter.update(extra)
    return TaggedOutput(ERRORS, letter)


class WriteDeadLetters(beam.PTransform):
    """A tuple of PCollections of rejection objects -> ``errors_path(prefix)``, one JSON line each."""

    def __init__(self, prefix: str):
        super().__init__()
        self._prefix = prefix

    def expand(self, error_collections):
        return (error_collections
                | "AllErrors" >> beam.Flatten()
                | "ErrorsToJson" >> beam.Map(rejections.json_line)
                | "WriteErrors" >> beam.io.WriteToText(
                    errors_sink_prefix(self._prefix), file_name_suffix=_EXTENSION, num_shards=1,
                    shard_name_template=_UNSHARDED))

"""predict ``--output_table``: the detections as rows of a BigQuery table, besides the JSON Lines.

One row per detection, with exactly the fields of its JSON Lines object (see
model.detection_lines): the rows are made from the JSON lines themselves, so the table and the
files cannot disagree.
``table_schema`` is the table's explicit schema, in BigQuery's JSON schema form (what
``bq mk --schema`` and ``SchemaField.from_api_repr`` read); its attribute fields follow
``--attributes``, as the JSON Lines do.

The rows go through Beam's ``WriteToBigQuery`` with the file loads method: workers write the rows
as newline-delimited JSON files below ``--temp_location`` (gs:// only), then BigQuery load jobs
read them into the table (created when missing) and the files are deleted. ``--table_write``
picks the load's write disposition: ``empty`` (default; the load fails when the table already
holds rows: BigQuery checks at load time, at the end of the job), ``append`` or ``truncate``.

Checked on the launcher, each with one ``error:`` line (``TableError``): the table spec,
``PROJECT:DATASET.TABLE`` or the replaced predictor's ``bq://PROJECT.DATASET.TABLE``, against
BigQuery's naming rules (a subset for table names: no spaces, no ``$`` partition decorators), and
that ``--temp_location`` is on gs://.
"""
import dataclasses
import json
import re
from typing import Any, Dict, List, Optional, Sequence, Tuple

import apache_beam as beam
from apache_beam.io.gcp.bigquery import BigQueryDisposition, WriteToBigQuery
from apache_beam.options.pipeline_options import GoogleCloudOptions, PipelineOptions

from model.detection_lines import AttributeOutput

WRITE_DISPOSITIONS = {"empty": BigQueryDisposition.WRITE_EMPTY,
                      "append": BigQueryDisposition.WRITE_APPEND,
                      "truncate": BigQueryDisposition.WRITE_TRUNCATE}
SPEC_FORMS = "PROJECT:DATASET.TABLE or bq://PROJECT.DATASET.TABLE"
# Project ids: 6-30 lowercase letters, digits and hyphens, a letter first, no hyphen last;
# a domain-scoped project (example.com:my-project) carries its domain in front.
_PROJECT = re.compile(r"(?:[a-z0-9-]+(?:\.[a-z0-9-]+)+:)?[a-z][a-z0-9-]{4,28}[a-z0-9]")
_DATASET = re.compile(r"[A-Za-z0-9_]{1,1024}")
_TABLE = re.compile(r"[\w-]+")  # letters, digits, underscores (Unicode too) and hyphens
_TABLE_MAX_BYTES = 1024


class TableError(ValueError):
    """--output_table names no usable table, or its file loads have nowhere to stage files."""


@dataclasses.dataclass(frozen=True)
class TableSpec:
    project: str
    dataset: str
    table: str

    def __str__(self) -> str:
        """The ``PROJECT:DATASET.TABLE`` form Beam's sink takes."""
        return f"{self.project}:{self.dataset}.{self.table}"


def _split(text: str) -> Optional[Tuple[str, str, str]]:
    if text.startswith("bq://"):
        parts = text[len("bq://"):].rsplit(".", 2)
        return tuple(parts) if len(parts) == 3 else None
    project, colon, rest = text.rpartition(":")
    dataset, dot, table = rest.partition(".")
    return (project, dataset, table) if colon and dot else None


def parse_table_spec(text: str) -> TableSpec:
    """``PROJECT:DATASET.TABLE`` or ``bq://PROJECT.DATASET.TABLE`` -> TableSpec; TableError
    (one line, naming the part that breaks BigQuery's rules) otherwise."""
    flag = f"--output_table {text!r}"
    parts = _split(text)
    if parts is None:
        raise TableError(f"{flag} is not {SPEC_FORMS}")
    project, dataset, table = parts
    if not _PROJECT.fullmatch(project):
        raise TableError(f"{flag}: {project!r} is no Google Cloud project id (6 to 30 lowercase "
                         "letters, digits and hyphens, starting with a letter, not ending with a "
                         "hyphen; a domain-scoped one as DOMAIN:ID)")
    if not _DATASET.fullmatch(dataset):
        raise TableError(f"{flag}: the dataset name {dataset!r} must be 1 to 1024 letters, "
                         "digits and underscores")
    if not _TABLE.fullmatch(table) or len(table.encode("utf-8")) > _TABLE_MAX_BYTES:
        raise TableError(f"{flag}: the table name {table!r} must be 1 to 1024 bytes of letters, "
                         "digits, underscores and hyphens")
    return TableSpec(project, dataset, table)


def check_temp_location(beam_args: Sequence[str]) -> str:
    """The gs:// ``--temp_location`` among the Beam options; TableError when there is none."""
    temp_location = PipelineOptions(list(beam_args)).view_as(GoogleCloudOptions).temp_location
    if not temp_location or not temp_location.startswith("gs://"):
        shown = f" (got {temp_location!r})" if temp_location else ""
        raise TableError("--output_table needs --temp_location gs://BUCKET/PATH: BigQuery file "
                         f"loads stage their files on Cloud Storage{shown}")
    return temp_location


def _field(name: str, kind: str, mode: str, description: str,
           fields: Sequence[Dict[str, Any]] = ()) -> Dict[str, Any]:
    field = {"name": name, "type": kind, "mode": mode, "description": description}
    if fields:
        field["fields"] = list(fields)
    return field


# The fields every detection has, in output order.
_COMMON_FIELDS = (
    _field("image_id", "INTEGER", "REQUIRED", "The image's id (its record's image/id)."),
    _field("filename", "STRING", "REQUIRED", "The image's path below --images, or its record's "
                                             "image/filename."),
    _field("id", "INTEGER", "REQUIRED", "image_id * 1024 + the detection's slot: unique, the "
                                        "same on every run."),
    _field("category_id", "INTEGER", "REQUIRED", "The label map's category id."),
    _field("bbox", "FLOAT", "REPEATED", "[x, y, width, height] in original image pixels."),
    _field("score", "FLOAT", "REQUIRED", "Detection score (6 decimals)."),
    _field("segmentation", "RECORD", "REQUIRED", "The mask as COCO compressed RLE.", (
        _field("size", "INTEGER", "REPEATED", "[height, width] of the image."),
        _field("counts", "STRING", "REQUIRED", "COCO compressed RLE counts."))),
    _field("mask_mean_score", "FLOAT", "REQUIRED", "Mean probability of the 28x28 mask grid's "
                                                   "cells > 0.5 (0 when none is)."),
    _field("mask_area_fraction", "FLOAT", "REQUIRED", "Number of the mask grid's cells > 0.5 "
                                                      "/ 784."),
    _field("area", "INTEGER", "REQUIRED", "Pixels of the mask pasted at image resolution."),
    _field("mask_pixel_mean_score", "FLOAT", "REQUIRED", "Mean probability of those pixels."),
)
_ATTRIBUTE_PROBABILITIES = _field("attribute_probabilities", "FLOAT", "REPEATED",
                                  "Probability per attribute id (index = id), 4 decimals.")
_ATTRIBUTE_IDS = _field("attribute_ids", "INTEGER", "REPEATED",
                        "Attribute ids with probability >= --attribute_threshold, ascending.")
_TOP_K_IDS = _field("attribute_top_k_ids", "INTEGER", "REPEATED",
                    "The K most probable attributes of the label map, most probable first.")
_TOP_K_PROBABILITIES = _field("attribute_top_k_probabilities", "FLOAT", "REPEATED",
                              "Their probabilities, 4 decimals.")
_ATTRIBUTE_FIELDS = {"full": (_ATTRIBUTE_PROBABILITIES, _ATTRIBUTE_IDS),
                     "ids": (_ATTRIBUTE_IDS,),
                     "top_k": (_ATTRIBUTE_IDS, _TOP_K_IDS, _TOP_K_PROBABILITIES)}


def table_schema(attributes: AttributeOutput) -> Dict[str, List[Dict[str, Any]]]:
    """The table's schema for an ``--attributes`` mode: ``{"fields": [...]}``, BigQuery's JSON
    form (fresh dicts: callers may change them)."""
    return json.loads(json.dumps(
        {"fields": [*_COMMON_FIELDS, *_ATTRIBUTE_FIELDS[attributes.mode]]}))


def field_names(schema: Dict[str, List[Dict[str, Any]]]) -> Tuple[str, ...]:
    return tuple(field["name"] for field in schema["fields"])


def table_row(line: str, names: Sequence[str]) -> Dict[str, Any]:
    """A detection's JSON line -> its table row (the same object); ValueError when its fields
    are not the schema's ``names`` (a load would fail on them at the end of the job)."""
    row = json.loads(line)
    if set(row) != set(names):
        raise ValueError(f"detection fields {sorted(row)} are not the table schema's "
                         f"{sorted(names)}")
    return row


class WriteDetectionsTable(beam.PTransform):
    """Detection JSON lines -> rows of ``table`` (file loads; created when missing).

    ``test_client``: Beam's BigQuery client override (a ``BigqueryV2`` with another endpoint),
    passed on to ``WriteToBigQuery``.
    """

    def __init__(self, table: TableSpec, attributes: AttributeOutput, write: str = "empty",
                 test_client: Any = None):
        super().__init__()
        self._table, self._schema = table, table_schema(attributes)
        self._write, self._test_client = write, test_client

    def expand(self, lines):
        return (lines
                | "ToTableRows" >> beam.Map(table_row, field_names(self._schema))
                | "WriteToBigQuery" >> WriteToBigQuery(
                    str(self._table), schema=self._schema,
                    method=WriteToBigQuery.Method.FILE_LOADS,
                    create_disposition=BigQueryDisposition.CREATE_IF_NEEDED,
                    write_disposition=WRITE_DISPOSITIONS[self._write],
                    test_client=self._test_client))


def add_flags(parser) -> None:
    """Adds ``--output_table`` and ``--table_write`` to predict's parser."""
    parser.add_argument("--output_table", metavar="PROJECT:DATASET.TABLE",
                        help="Also write the detections to this BigQuery table (or "
                             "bq://PROJECT.DATASET.TABLE) by file loads; needs --temp_location "
                             "gs://... The errors file stays at --output's prefix.")
    parser.add_argument("--table_write", choices=sorted(WRITE_DISPOSITIONS), default="empty",
                        help="--output_table: empty (default; the load fails when the table "
                             "holds rows), append, or truncate (replace its rows).")


def checked_table(output_table: Optional[str], beam_args: Sequence[str]) -> Optional[TableSpec]:
    """--output_table checked on the launcher, with the --temp_location it needs (None: none)."""
    if output_table is None:
        return None
    table = parse_table_spec(output_table)
    check_temp_location(beam_args)
    return table

"""predict --output_table: the table schema and rows against BigQuery's and Beam's own schema code,
the pipeline graph with Beam's file-loads sink, and the launcher's checks of the table spec.

No BigQuery service or emulator runs here: the sink itself is built, never run (see the README's
"BigQuery output" section).
"""
import functools
import io
import json
import os
import subprocess
import sys

import fastavro
import fastavro.validation
import pytest
from apache_beam.io.gcp import bigquery_tools
from apache_beam.io.gcp.bigquery import WriteToBigQuery
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.pipeline import Pipeline, PipelineVisitor
from google.cloud import bigquery
from google.cloud.bigquery import _helpers, enums

from beam_pipelines import bigquery_output, predict
from model import detection_lines
from tests import bigquery_emulator
from tests.dataflow_jobs import anonymous_gcs, build_job, pickled_payloads, unpickle_in_fresh_process
from tests.gcs_emulator import running_emulator
from model.synthetic.generate import SyntheticConfig, generate_split
from tests.prediction_helpers import read_detections, run_predict, tiny_model

_ = tiny_model  # a fixture used by name below
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODES = ("full", "ids", "top_k=3")
INT64_MAX = 2 ** 63 - 1


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    root = tmp_path_factory.mktemp("bq_images")
    generate_split(str(root), "val", 3, SyntheticConfig(image_size=80, seed=11))
    return str(root / "val")


@pytest.fixture(scope="module")
def rows_by_mode(images, tiny_model, tmp_path_factory):
    """{--attributes text: (AttributeOutput, the JSON lines of a real predict run)}."""
    out = tmp_path_factory.mktemp("bq_predict")
    runs = {}
    for mode in MODES:
        prefix = str(out / mode.replace("=", ""))
        run_predict("--model", tiny_model, "--images", images, "--output", prefix,
                    "--min_score_threshold", "0", "--attributes", mode)
        lines = [json.dumps(row) for row in read_detections(prefix)]
        assert lines, mode
        runs[mode] = (detection_lines.parse_attribute_output(mode), lines)
    return runs


def _check_value(field: dict, value, where: str) -> None:
    """BigQuery's load rules for one JSON value of ``field`` (mode, type, int64 range)."""
    if field["mode"] == "REPEATED":
        assert isinstance(value, list), where
        for index, item in enumerate(value):
            _check_scalar(field, item, f"{where}[{index}]")
        return
    assert value is not None or field["mode"] == "NULLABLE", where
    if value is not None:
        _check_scalar(field, value, where)


def _check_scalar(field: dict, value, where: str) -> None:
    kind = field["type"]
    if kind == "RECORD":
        _check_row(field["fields"], value, where)
    elif kind == "INTEGER":
        assert isinstance(value, int) and not isinstance(value, bool), where
        assert -INT64_MAX - 1 <= value <= INT64_MAX, where
    elif kind == "FLOAT":
        assert isinstance(value, (int, float)) and not isinstance(value, bool), where
    elif kind == "STRING":
        assert isinstance(value, str), where
    else:
        raise AssertionError(f"{where}: type {kind} not expected in this schema")


def _check_row(fields, row, where: str = "row") -> None:
    assert isinstance(row, dict), where
    assert set(row) == {field["name"] for field in fields}, (where, sorted(row))
    for field in fields:
        _check_value(field, row[field["name"]], f"{where}.{field['name']}")


def segmentation_fields(table) -> tuple:
    return next(field for field in table.schema if field.name == "segmentation").fields


def _shape(field: dict) -> tuple:
    return (field["name"], field["type"], field["mode"],
            tuple(_shape(sub) for sub in field.get("fields", ())))


def _avro_round_trip(schema: dict, rows):
    """Checks ``rows`` with fastavro's validator against the Avro schema Beam's sink derives from
    the table schema, writes them with Beam's Avro row writer (the sink's Avro temp files) and
    reads them back."""
    avro_schema = fastavro.parse_schema(bigquery_tools.get_avro_schema_from_table_schema(schema))
    for row in rows:
        fastavro.validation.validate(row, avro_schema, raise_errors=True)
    buffer = io.BytesIO()
    writer = bigquery_tools.AvroRowWriter(buffer, schema)
    for row in rows:
        writer.write(row)
    writer.flush()
    buffer.seek(0)
    return list(fastavro.reader(buffer))


@pytest.mark.parametrize("mode", MODES)
def test_rows_of_a_real_run_match_the_schema(rows_by_mode, mode):
    attributes, lines = rows_by_mode[mode]
    schema = bigquery_output.table_schema(attributes)
    names = bigquery_output.field_names(schema)
    rows = [bigquery_output.table_row(line, names) for line in lines]
    assert rows == [json.loads(line) for line in lines]  # the row is the JSON object

    # google-cloud-bigquery's own parsing of the schema, and its row -> insert JSON conversion.
    fields = [bigquery.SchemaField.from_api_repr(field) for field in schema["fields"]]
    table = bigquery.Table("my-project-123.ds.detections", schema=fields)
    assert [_shape(field.to_api_repr()) for field in table.schema] == [
        _shape(field) for field in schema["fields"]]
    legal_types = {kind.value for kind in enums.SqlTypeNames}
    for field in [*table.schema, *segmentation_fields(table)]:
        assert field.field_type in legal_types and field.mode in (
            "NULLABLE", "REQUIRED", "REPEATED"), field
    segmentation = next(field for field in table.schema if field.name == "segmentation")
    assert segmentation.field_type == "RECORD" and segmentation.mode == "REQUIRED"
    assert [(f.name, f.field_type, f.mode) for f in segmentation.fields] == [
        ("size", "INTEGER", "REPEATED"), ("counts", "STRING", "REQUIRED")]
    for row in rows:
        _check_row(schema["fields"], row)
        as_json = _helpers._record_field_to_json(table.schema, row)
        assert set(as_json) == set(names)
        assert as_json["id"] == str(row["id"])  # INT64 travels as a decimal string
        assert as_json["segmentation"] == row["segmentation"] | {
            "size": [str(v) for v in row["segmentation"]["size"]]}

    # Beam's own schema parsing, and its Avro rows (strictly typed) read back unchanged.
    beam_schema = bigquery_tools.parse_table_schema_from_json(json.dumps(schema))
    assert [field.name for field in beam_schema.fields] == list(names)
    as_dict = bigquery_tools.get_dict_table_schema(beam_schema)["fields"]
    assert [_shape(field) for field in as_dict] == [_shape(field) for field in schema["fields"]]
    back = _avro_round_trip(schema, rows)
    assert len(back) == len(rows)
    for got, row in zip(back, rows):
        assert got.keys() == row.keys()
        for name in ("image_id", "filename", "id", "category_id", "segmentation"):
            assert got[name] == row[name]
        assert got["bbox"] == pytest.approx(row["bbox"])


@pytest.mark.parametrize("mode, present, absent", [
    ("full", {"attribute_probabilities", "attribute_ids"}, {"attribute_top_k_ids"}),
    ("ids", {"attribute_ids"}, {"attribute_probabilities", "attribute_top_k_ids"}),
    ("top_k=3", {"attribute_ids", "attribute_top_k_ids", "attribute_top_k_probabilities"},
     {"attribute_probabilities"}),
])
def test_schema_follows_the_attribute_mode(mode, present, absent):
    names = set(bigquery_output.field_names(
        bigquery_output.table_schema(detection_lines.parse_attribute_output(mode))))
    assert present <= names and not absent & names
    assert {"image_id", "filename", "id", "category_id", "bbox", "score", "segmentation",
            "mask_mean_score", "mask_area_fraction", "area", "mask_pixel_mean_score"} <= names


def test_broken_rows_are_refused(rows_by_mode):
    """The checks above can fail: rows that a load job would refuse are refused by them."""
    attributes, lines = rows_by_mode["full"]
    schema = bigquery_output.table_schema(attributes)
    row = json.loads(lines[0])
    with pytest.raises(ValueError, match="not the table schema"):  # a mode's rows, another table
        bigquery_output.table_row(lines[0], bigquery_output.field_names(
            bigquery_output.table_schema(detection_lines.parse_attribute_output("ids"))))
    broken = [dict(row, segmentation=dict(row["segmentation"], size="80x80")),
              dict(row, attribute_ids=[0.5]),
              dict(row, id=str(row["id"])),
              {key: value for key, value in row.items() if key != "score"}]
    for bad in broken:
        with pytest.raises(AssertionError):
            _check_row(schema["fields"], bad)
        with pytest.raises((fastavro.validation.ValidationError, ValueError, TypeError)):
            _avro_round_trip(schema, [bad])


def _sinks(pipeline):
    found = []

    class Visitor(PipelineVisitor):
        def enter_composite_transform(self, node):
            if isinstance(node.transform, WriteToBigQuery):
                found.append(node)

    pipeline.visit(Visitor())
    return found


@pytest.mark.parametrize("write", ["empty", "append", "truncate"])
def test_pipeline_builds_with_the_file_loads_sink(images, tiny_model, tmp_path, write):
    """The whole predict graph with --output_table, built (and serialized, as a runner would)
    but not run: no BigQuery is reachable."""
    argv = ["--model", tiny_model, "--images", images, "--output", str(tmp_path / "p"),
            "--output_table", "my-project-123:predictions.detections", "--attributes", "top_k=3",
            "--table_write", write]
    beam_args = ["--temp_location", "gs://my-bucket/tmp", "--project", "my-project-123"]
    args, rest = predict.parse_args(argv + beam_args)
    args.output_table = bigquery_output.checked_table(args.output_table, rest)
    pipeline = Pipeline(options=PipelineOptions(rest))
    predict.build(pipeline, args, predict.model_handler(args))
    [node] = _sinks(pipeline)
    assert node.full_label == "WriteTable/WriteToBigQuery"
    sink = node.transform
    assert sink.method == WriteToBigQuery.Method.FILE_LOADS
    assert sink.table_reference.projectId == "my-project-123"
    assert (sink.table_reference.datasetId, sink.table_reference.tableId) == (
        "predictions", "detections")
    assert sink.schema == bigquery_output.table_schema(
        detection_lines.parse_attribute_output("top_k=3"))
    assert sink.create_disposition == "CREATE_IF_NEEDED"
    assert sink.write_disposition == bigquery_output.WRITE_DISPOSITIONS[write]
    labels = {part.full_label for part in pipeline.transforms_stack[0].parts}
    assert {"WriteDetections", "WriteTable", "DeadLetters"} <= labels
    pipeline.to_runner_api()  # every DoFn of the graph pickles


def test_dataflow_job_carries_the_file_loads_sink(images, tiny_model, tmp_path):
    """The job Dataflow would receive (a classic template, built offline against the GCS
    emulator): the sink's load-job DoFn is in it, with the schema, and unpickles elsewhere."""
    from apache_beam.internal import pickler

    bucket = "bq-output-jobs"
    with running_emulator(bucket), anonymous_gcs():
        built = build_job(predict.run, [
            "--model", tiny_model, "--images", images, "--output", f"gs://{bucket}/out/p",
            "--output_table", "my-project-123:predictions.detections", "--attributes", "ids",
            "--table_write", "append"], bucket, "predict_table")
    assert built.returned == {} and built.printed.strip().splitlines() == [
        f"template: gs://{bucket}/templates/predict_table.json"]
    payloads = {name: payload for name, payload in pickled_payloads(built).items()
                if name.startswith("WriteTable/")}
    [trigger] = [name for name in payloads if name.endswith("ParDo(TriggerLoadJobs)")
                 and "WithoutTempTables" in name]
    loads = pickler.loads(payloads[trigger])
    load_fn = next(part for part in (loads if isinstance(loads, tuple) else (loads,))
                   if type(part).__name__ == "TriggerLoadJobs")
    assert load_fn.schema == bigquery_output.table_schema(
        detection_lines.parse_attribute_output("ids"))
    assert load_fn.write_disposition == "WRITE_APPEND"
    assert load_fn.create_disposition == "CREATE_IF_NEEDED"
    types = unpickle_in_fresh_process(payloads, "default", str(tmp_path))
    assert "TriggerLoadJobs" in types[trigger]
    assert "WriteTable/ToTableRows" in types  # every DoFn of the sink unpickled there


@pytest.mark.parametrize("text, parsed", [
    ("my-project-123:predictions.detections", ("my-project-123", "predictions", "detections")),
    ("bq://my-project-123.predictions.detections",
     ("my-project-123", "predictions", "detections")),
    ("example.com:my-project:ds_1.table-2", ("example.com:my-project", "ds_1", "table-2")),
    ("bq://example.com:my-project.ds.t", ("example.com:my-project", "ds", "t")),
    ("abcdef:D.Täble_ü", ("abcdef", "D", "Täble_ü")),
])
def test_table_specs_accepted(text, parsed):
    spec = bigquery_output.parse_table_spec(text)
    assert (spec.project, spec.dataset, spec.table) == parsed
    assert str(spec) == f"{parsed[0]}:{parsed[1]}.{parsed[2]}"
    # Beam's own parser reads the form handed to the sink back to the same parts.
    reference = bigquery_tools.parse_table_reference(str(spec))
    assert (reference.projectId, reference.datasetId, reference.tableId) == parsed


@pytest.mark.parametrize("text, says", [
    ("predictions.detections", "is not PROJECT:DATASET.TABLE"),
    ("my-project-123:detections", "is not PROJECT:DATASET.TABLE"),
    ("bq://my-project-123.detections", "is not PROJECT:DATASET.TABLE"),
    ("My_Project:ds.t", "is no Google Cloud project id"),
    ("proj:ds.t", "is no Google Cloud project id"),  # 4 characters
    ("1project:ds.t", "is no Google Cloud project id"),
    ("my-project-:ds.t", "is no Google Cloud project id"),
    ("a" * 31 + ":ds.t", "is no Google Cloud project id"),
    ("my-project-123:my-dataset.t", "the dataset name 'my-dataset'"),
    ("my-project-123:ds.t.x", "the table name 't.x'"),
    ("my-project-123:ds.", "the table name ''"),
    ("my-project-123:ds.my table", "the table name 'my table'"),
    ("my-project-123:ds.t$20260101", "the table name"),
    ("my-project-123:ds." + "t" * 1025, "1 to 1024 bytes"),
])
def test_bad_table_specs_are_one_line(text, says):
    with pytest.raises(bigquery_output.TableError) as raised:
        bigquery_output.parse_table_spec(text)
    message = str(raised.value)
    assert says in message and "\n" not in message and message.startswith("--output_table")


@pytest.mark.parametrize("beam_args, says", [
    ([], "needs --temp_location gs://BUCKET/PATH"),
    (["--temp_location", "/tmp/x"], "(got '/tmp/x')"),
])
def test_file_loads_need_a_gcs_temp_location(beam_args, says):
    with pytest.raises(bigquery_output.TableError, match="needs --temp_location") as raised:
        bigquery_output.checked_table("my-project-123:ds.t", beam_args)
    assert says in str(raised.value)
    assert bigquery_output.checked_table(None, beam_args) is None


@pytest.mark.parametrize("extra, says", [
    (["--output_table", "My_Project:ds.t", "--temp_location", "gs://b/t"],
     "is no Google Cloud project id"),
    (["--output_table", "my-project-123:ds.t"], "needs --temp_location gs://"),
])
def test_cli_refuses_a_bad_table_with_one_line(tmp_path, extra, says):
    """Checked first, before the model: the model path here does not even exist."""
    result = subprocess.run(
        [sys.executable, "-m", "beam_pipelines.predict", "--model", str(tmp_path / "no-model"),
         "--images", str(tmp_path), "--output", str(tmp_path / "p"), *extra],
        cwd=REPO, capture_output=True, text=True, timeout=300,
        env=dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="3"))
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and result.stderr.strip().splitlines()[-1] == errors[0]
    assert says in errors[0]
    assert not list(tmp_path.glob("p*"))


@pytest.mark.skipif(not os.environ.get(bigquery_emulator.PYTHON_VARIABLE),
                    reason=f"opt-in: {bigquery_emulator.PYTHON_VARIABLE} names no Python with "
                           "bqemulator (see the README's BigQuery output)")
def test_sink_loads_the_rows_into_an_emulated_bigquery(images, tiny_model, tmp_path, monkeypatch):
    """predict --output_table end to end: Beam's file loads stage the rows on (emulated) GCS and
    (emulated) BigQuery load jobs read them; the table holds the JSON lines, row for row."""
    from google.api_core.client_options import ClientOptions
    from google.auth.credentials import AnonymousCredentials

    project = "my-project-123"
    with bigquery_emulator.running_emulators(os.environ[bigquery_emulator.PYTHON_VARIABLE],
                                             "bkt", project, str(tmp_path)) as endpoint:
        client = bigquery.Client(project=project, credentials=AnonymousCredentials(),
                                 client_options=ClientOptions(api_endpoint=endpoint))
        client.create_dataset("predictions")
        # Only the endpoint differs from a run against BigQuery: Beam's own client, pointed at it.
        monkeypatch.setattr(bigquery_output, "WriteDetectionsTable", functools.partial(
            bigquery_output.WriteDetectionsTable,
            test_client=bigquery_emulator.EndpointClient(endpoint)))

        def predict_into(name, mode, write):
            prefix = str(tmp_path / "out" / name)
            counters = run_predict(
                "--model", tiny_model, "--images", images, "--output", prefix,
                "--min_score_threshold", "0", "--attributes", mode,
                "--output_table", f"{project}:predictions.{mode.replace('=', '')}",
                "--table_write", write, "--temp_location", "gs://bkt/tmp")
            return counters, read_detections(prefix)

        for mode in MODES:
            counters, lines = predict_into(mode.replace("=", ""), mode, "empty")
            table = client.get_table(f"{project}.predictions.{mode.replace('=', '')}")
            schema = bigquery_output.table_schema(detection_lines.parse_attribute_output(mode))
            assert [_shape(field.to_api_repr()) for field in table.schema] == [
                _shape(field) for field in schema["fields"]]
            rows = {row["id"]: dict(row) for row in client.list_rows(table)}
            assert len(rows) == len(lines) == counters["detections_written"] > 0
            for line in lines:
                _assert_same(rows[line["id"]], line)
        _, lines = predict_into("again", "full", "append")
        assert client.get_table(f"{project}.predictions.full").num_rows == 2 * len(lines)
        _, lines = predict_into("truncated", "full", "truncate")
        assert client.get_table(f"{project}.predictions.full").num_rows == len(lines)
        with pytest.raises(Exception, match="is not empty and writeDisposition is WRITE_EMPTY"):
            predict_into("refused", "full", "empty")


def _assert_same(got: dict, want: dict) -> None:
    """A row read back equals its JSON object (floats to 1e-9: they travel as decimal text)."""
    assert got.keys() == want.keys()
    for name, value in want.items():
        if isinstance(value, float) or (isinstance(value, list) and value
                                        and isinstance(value[0], float)):
            assert got[name] == pytest.approx(value, abs=1e-9), name
        else:
            assert got[name] == value, name

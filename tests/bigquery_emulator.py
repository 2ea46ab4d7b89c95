"""A real BigQuery emulator (bqemulator, in a virtualenv of its own) beside a disk-backed GCS
emulator, for the opt-in test of predict's BigQuery sink.

bqemulator cannot live in the project's environment (it needs pyarrow >= 14; tfx-bsl pins 10), so
``BQEMULATOR_PYTHON`` names the Python of a virtualenv that has it (see the README's "BigQuery
output"). It resolves a load job's gs:// URIs below a local directory: the GCS emulator's store,
where Beam's file loads stage their files. Its DuckDB spatial extension (GEOGRAPHY, unused here)
is downloaded at start-up, which fails offline, so it is turned off in the emulator's process.
"""
import contextlib
import os
import subprocess
import sys

from apache_beam.io.gcp.internal.clients import bigquery as bigquery_api

from tests.gcs_emulator import free_port, storage_emulator_host, wait_until_listening

PYTHON_VARIABLE = "BQEMULATOR_PYTHON"
_START = ("import sys; from bqemulator.storage import engine; "
          "engine.DuckDBEngine._load_spatial = lambda self: None; "
          "from bqemulator.cli import main; sys.argv[0] = 'bqemulator'; sys.exit(main())")


@contextlib.contextmanager
def running_emulators(python: str, bucket: str, project: str, workdir: str):
    """Starts both emulators; sets STORAGE_EMULATOR_HOST while they run; yields the BigQuery
    REST endpoint (``http://127.0.0.1:PORT``)."""
    store = os.path.join(workdir, "gcs")
    gcs_port, bq_port = free_port(), free_port()
    gcs = subprocess.Popen(
        [os.path.join(os.path.dirname(sys.executable), "gcp-storage-emulator"), "start",
         "--host", "127.0.0.1", "--port", str(gcs_port), "--default-bucket", bucket, "-q"],
        env=dict(os.environ, STORAGE_DIR=store), cwd=workdir)
    bq = subprocess.Popen(
        [python, "-c", _START, "start", "--rest-host", "127.0.0.1", "--rest-port", str(bq_port),
         "--grpc-port", "0", "--project", project, "--log-level", "warning"],
        env=dict(os.environ, BQEMU_GCS_LOCAL_ROOT=store), cwd=workdir)
    try:
        with storage_emulator_host(gcs_port):
            wait_until_listening(gcs_port, gcs, "gcp-storage-emulator", seconds=60)
            wait_until_listening(bq_port, bq, "bqemulator", seconds=60)
            yield f"http://127.0.0.1:{bq_port}"
    finally:
        for process in (gcs, bq):
            process.terminate()
            process.wait(timeout=30)


class EndpointClient(bigquery_api.BigqueryV2):
    """Beam's own BigQuery client (apitools) at ``endpoint``, for ``WriteToBigQuery``'s
    ``test_client``; picklable (Beam pickles the sink's DoFns with it): it is rebuilt from its
    endpoint on unpickling."""

    def __init__(self, endpoint: str):
        super().__init__(url=f"{endpoint}/bigquery/v2/", get_credentials=False)
        self.endpoint = endpoint

    def __reduce__(self):
        return EndpointClient, (self.endpoint,)

"""A real GCS emulator (gcp-storage-emulator) on 127.0.0.1 for gs:// tests."""
import contextlib
import os
import socket
import subprocess
import sys
import time

from apache_beam.io.filesystems import FileSystems


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_listening(port: int, process: subprocess.Popen, name: str, seconds: float) -> None:
    """Returns once 127.0.0.1:port accepts connections; RuntimeError when ``process`` exits or
    ``seconds`` pass first."""
    deadline = time.time() + seconds
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            if time.time() > deadline or process.poll() is not None:
                raise RuntimeError(f"{name} did not start")
            time.sleep(0.1)


@contextlib.contextmanager
def running_emulator(bucket: str):
    """Starts the emulator with ``bucket``; sets STORAGE_EMULATOR_HOST while it runs."""
    port = free_port()
    executable = os.path.join(os.path.dirname(sys.executable), "gcp-storage-emulator")
    process = subprocess.Popen([executable, "start", "--host", "127.0.0.1", "--port", str(port),
                                "--in-memory", "--default-bucket", bucket, "-q"])
    try:
        with storage_emulator_host(port):
            wait_until_listening(port, process, "gcp-storage-emulator", seconds=30)
            yield
    finally:
        process.terminate()
        process.wait(timeout=30)


@contextlib.contextmanager
def storage_emulator_host(port: int):
    """Points STORAGE_EMULATOR_HOST (Beam's and the Cloud clients' gs://) at 127.0.0.1:port
    while the block runs, and restores what it was."""
    previous = os.environ.get("STORAGE_EMULATOR_HOST")
    os.environ["STORAGE_EMULATOR_HOST"] = f"http://127.0.0.1:{port}"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("STORAGE_EMULATOR_HOST", None)
        else:
            os.environ["STORAGE_EMULATOR_HOST"] = previous


def upload_tree(local_dir: str, gcs_prefix: str) -> None:
    for name in sorted(os.listdir(local_dir)):
        path = os.path.join(local_dir, name)
        if os.path.isdir(path):
            upload_tree(path, f"{gcs_prefix}/{name}")
            continue
        with open(path, "rb") as source, FileSystems.create(f"{gcs_prefix}/{name}") as target:
            target.write(source.read())


def download_matching(pattern: str, local_dir: str) -> list:
    paths = []
    for metadata in FileSystems.match([pattern])[0].metadata_list:
        local = os.path.join(local_dir, metadata.path.rsplit("/", 1)[1])
        with FileSystems.open(metadata.path, compression_type="uncompressed") as source, \
                open(local, "wb") as target:
            target.write(source.read())
        paths.append(local)
    return sorted(paths)

"""Test helpers for tpu.vm: config files, and a stand-in gcloud executable that records the
argument list of every call into a file (a real executable run as a subprocess)."""
import json
import os
import stat
import sys
from typing import List

BASE = {"name": "fashion-v4", "zone": "us-central2-b", "accelerator_type": "v4-8",
        "runtime_version": "tpu-vm-tf-2.15.0-pjrt", "project": "fashion-project"}

_RECORDING_GCLOUD = """#!{python}
import json, sys
with open({log!r}, "a") as log:
    log.write(json.dumps(sys.argv[1:]) + "\\n")
if sys.argv[1:5] == ["compute", "tpus", "tpu-vm", "describe"]:
    print("READY\\tHEALTHY")
sys.exit({status})
"""


def write_config(directory, raw, name="tpu.json") -> str:
    path = os.path.join(str(directory), name)
    with open(path, "w") as handle:
        handle.write(raw if isinstance(raw, str) else json.dumps(raw))
    return path


class RecordingGcloud:
    """An executable at ``path`` that appends its argv (without argv[0]) to ``log`` as one
    JSON line and exits with ``status``; ``describe`` also prints a state."""

    def __init__(self, directory, status: int = 0):
        self.path = os.path.join(str(directory), "gcloud")
        self.log = os.path.join(str(directory), "gcloud-calls.jsonl")
        with open(self.path, "w") as handle:
            handle.write(_RECORDING_GCLOUD.format(python=sys.executable, log=self.log,
                                                  status=status))
        os.chmod(self.path, os.stat(self.path).st_mode | stat.S_IXUSR)

    def calls(self) -> List[List[str]]:
        if not os.path.exists(self.log):
            return []
        with open(self.log) as handle:
            return [json.loads(line) for line in handle]

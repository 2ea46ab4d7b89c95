"""Test helpers: build a pipeline as Dataflow's runner would submit it, offline, and read the job.

Beam's DataflowRunner, given ``--template_location``, stages everything the job needs under the
temp location and writes the job request (a classic template) instead of submitting it. With
``--no_auth`` and the GCS emulator (tests/gcs_emulator.py) that needs no network and no
credentials. What Dataflow would receive is then:

* the job request, the template JSON: worker pools, SDK container images, service options,
  pipeline options (``pipelineUrl`` among them);
* the portable pipeline proto it names (``pipeline.pb`` in the staging location): every
  transform, PCollection and environment, with each DoFn as Beam pickled it.
"""
import contextlib
import dataclasses
import io
import json
import os
import pickle
import subprocess
import sys
from collections import defaultdict
from typing import Callable, Dict, Iterable, List, Sequence, Set

from apache_beam.io.filesystems import FileSystems
from apache_beam.portability import common_urns, python_urns
from apache_beam.portability.api import beam_runner_api_pb2

PROJECT = "my-project-123"
REGION = "us-central1"
WORKER_IMAGE = f"{REGION}-docker.pkg.dev/{PROJECT}/workers/fashion-worker-gpu:0.1.0"
ACCELERATOR = "worker_accelerator=type:nvidia-l4;count:1;install-nvidia-driver"
REQUEST_LIMIT_BYTES = 20 * 1024 * 1024  # Dataflow's limit on a job request (its JSON)
GRAPH_LIMIT_BYTES = 10 * 1024 * 1024  # and on the job graph
GROUP_BY_KEY = common_urns.primitives.GROUP_BY_KEY.urn
PAR_DO = common_urns.primitives.PAR_DO.urn
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@contextlib.contextmanager
def anonymous_gcs():
    """Beam's GCS client connects anonymously (what it does on its own when no credentials are
    found, after about 20 s of retrying the lookup): the emulator needs none."""
    from apache_beam.internal.gcp import auth
    saved = auth._Credentials._credentials_init, auth._Credentials._credentials
    auth._Credentials._credentials_init, auth._Credentials._credentials = True, None
    try:
        yield
    finally:
        auth._Credentials._credentials_init, auth._Credentials._credentials = saved


def dataflow_args(bucket: str, name: str) -> List[str]:
    """Beam options for a GPU job on the worker image, written as the template ``name``."""
    return ["--runner", "DataflowRunner", "--project", PROJECT, "--region", REGION, "--no_auth",
            "--template_location", f"gs://{bucket}/templates/{name}.json",
            "--temp_location", f"gs://{bucket}/tmp/{name}",
            "--sdk_container_image", WORKER_IMAGE, "--sdk_location=container",
            f"--dataflow_service_options={ACCELERATOR}",
            "--machine_type", "g2-standard-4", "--disk_size_gb", "50"]


def _read(path: str) -> bytes:
    with FileSystems.open(path, compression_type="uncompressed") as stream:
        return stream.read()


@dataclasses.dataclass
class BuiltJob:
    job: Dict  # the job request (the template JSON)
    request_bytes: int
    proto: beam_runner_api_pb2.Pipeline
    proto_bytes: int
    printed: str  # what the launcher printed
    returned: Dict  # what run() returned

    @property
    def options(self) -> Dict:
        return self.job["environment"]["sdkPipelineOptions"]["options"]

    def transforms_named(self, name: str) -> List[str]:
        """Ids of the transforms whose full name is ``name`` (a composite or a leaf)."""
        return [tid for tid, t in self.proto.components.transforms.items() if t.unique_name == name]

    def leaves(self) -> Dict[str, beam_runner_api_pb2.PTransform]:
        return {tid: t for tid, t in self.proto.components.transforms.items()
                if not t.subtransforms and t.spec.urn}


def build_job(run: Callable[[Sequence[str]], Dict], args: Sequence[str], bucket: str,
              name: str) -> BuiltJob:
    """Runs a launcher with ``args`` plus ``dataflow_args`` and reads back the job it staged."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        returned = run(list(args) + dataflow_args(bucket, name))
    request = _read(f"gs://{bucket}/templates/{name}.json")
    job = json.loads(request)
    pipeline_url = job["environment"]["sdkPipelineOptions"]["options"]["pipelineUrl"]
    assert pipeline_url.startswith(f"gs://{bucket}/tmp/{name}/") and pipeline_url.endswith("/pipeline.pb")
    staged = _read(pipeline_url)
    return BuiltJob(job, len(request), beam_runner_api_pb2.Pipeline.FromString(staged), len(staged),
                    printed.getvalue(), returned)


def unshuffled_reach(built: BuiltJob, source: str, target: str) -> Set[str]:
    """Leaf transforms of ``target`` (a composite's name, or a leaf's) that data from
    ``source``'s outputs reaches without passing a GroupByKey: the steps the runner may fuse
    with the source. Empty when a GroupByKey (a Reshuffle is one) stands on every path.

    Raises AssertionError when ``target`` is not downstream of ``source`` at all, so that an
    empty answer means something.
    """
    leaves = built.leaves()
    consumers = defaultdict(list)
    for tid, leaf in leaves.items():
        for pcoll in leaf.inputs.values():
            consumers[pcoll].append(tid)
    (source_id,) = built.transforms_named(source)
    starts = list(built.proto.components.transforms[source_id].outputs.values())

    def reached(stop_at_shuffles: bool) -> Set[str]:
        seen, found, frontier = set(), set(), list(starts)
        while frontier:
            for tid in consumers[frontier.pop()]:
                if tid in seen:
                    continue
                seen.add(tid)
                leaf = leaves[tid]
                if leaf.unique_name == target or leaf.unique_name.startswith(target + "/"):
                    found.add(leaf.unique_name)
                if stop_at_shuffles and leaf.spec.urn == GROUP_BY_KEY:
                    continue
                frontier.extend(leaf.outputs.values())
        return found

    assert reached(stop_at_shuffles=False), f"{target} is not downstream of {source}"
    return reached(stop_at_shuffles=True)


def pickled_payloads(built: BuiltJob) -> Dict[str, bytes]:
    """{transform name: pickled payload} of every DoFn and CombineFn Beam pickled into the job."""
    payloads = {}
    for leaf in built.leaves().values():
        if leaf.spec.urn == PAR_DO:
            do_fn = beam_runner_api_pb2.ParDoPayload.FromString(leaf.spec.payload).do_fn
            if do_fn.urn == python_urns.PICKLED_DOFN_INFO:
                payloads[leaf.unique_name] = do_fn.payload
    for transform in built.proto.components.transforms.values():
        if transform.spec.urn == common_urns.composites.COMBINE_PER_KEY.urn:
            combine_fn = beam_runner_api_pb2.CombinePayload.FromString(transform.spec.payload).combine_fn
            if combine_fn.urn == python_urns.PICKLED_COMBINE_FN:
                payloads[transform.unique_name] = combine_fn.payload
    return payloads


_UNPICKLE = """
import pickle, sys
from apache_beam.internal import pickler
pickler.set_library(sys.argv[2])
with open(sys.argv[1], "rb") as stream:
    payloads = pickle.load(stream)
def kind(obj):
    wrapped = getattr(obj, "_fn", None)  # Map / FlatMap: the function it calls
    if callable(wrapped) and hasattr(wrapped, "__qualname__"):
        return f"{type(obj).__qualname__}:{wrapped.__module__}.{wrapped.__qualname__}"
    return f"{type(obj).__module__}.{type(obj).__qualname__}"
for name, payload in sorted(payloads.items()):
    loaded = pickler.loads(payload)
    parts = loaded if isinstance(loaded, tuple) else (loaded,)
    print(name, "\\t", " ".join(kind(p) for p in parts))
"""


def unpickle_in_fresh_process(payloads: Dict[str, bytes], pickle_library: str,
                              workdir: str) -> Dict[str, str]:
    """Unpickles each payload with Beam's pickler in a new interpreter, started outside the
    sources (as a worker is: the package importable, nothing of the launcher's state);
    returns {transform name: the unpickled objects' types, space-separated (a Map's or
    FlatMap's as ``CallableWrapperDoFn:module.function``)}."""
    path = os.path.join(workdir, "payloads.pickle")
    with open(path, "wb") as stream:
        pickle.dump(payloads, stream)
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3", PYTHONWARNINGS="ignore")
    done = subprocess.run([sys.executable, "-c", _UNPICKLE, path, pickle_library], cwd=workdir,
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    types = {}
    for line in done.stdout.splitlines():
        name, _, kinds = line.partition(" \t ")
        types[name] = kinds
    return types


def container_images(built: BuiltJob) -> Iterable[str]:
    """The container image of every environment in the proto."""
    for environment in built.proto.components.environments.values():
        if environment.urn == common_urns.environments.DOCKER.urn:
            yield beam_runner_api_pb2.DockerPayload.FromString(environment.payload).container_image

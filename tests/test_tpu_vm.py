"""python -m tpu.vm: the gcloud commands built from configs, bad configs refused with one
line, --dry_run, real runs of a recording gcloud, and the real gcloud's own parsing of
the commands and the Cloud TPU API v2 requests it builds from them, with no network."""
import json
import os
import shlex
import shutil
import subprocess
import sys

import pytest

from tests.tpu_vm_helpers import BASE, RecordingGcloud, write_config
from tpu import vm

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TPU_VM = ["gcloud", "compute", "tpus", "tpu-vm"]

# Configs across zones, accelerator types, runtime versions, preemptible/spot, labels,
# network, subnetwork and service account, with the create command each must build.
CONFIGS = {
    "v3-8 on demand": (
        {"name": "fashion-v3", "zone": "europe-west4-a", "accelerator_type": "v3-8",
         "runtime_version": "tpu-vm-tf-2.15.0-pjrt", "project": "fashion-project"},
        ["create", "fashion-v3", "--zone=europe-west4-a", "--project=fashion-project",
         "--accelerator-type=v3-8", "--version=tpu-vm-tf-2.15.0-pjrt"]),
    "v4-8 spot with labels": (
        {**BASE, "spot": True, "labels": {"team": "vision", "run": "sn143-r1", "cost_centre": ""}},
        ["create", "fashion-v4", "--zone=us-central2-b", "--project=fashion-project",
         "--accelerator-type=v4-8", "--version=tpu-vm-tf-2.15.0-pjrt", "--spot",
         "--labels=team=vision,run=sn143-r1,cost_centre="]),
    "v5litepod-8 preemptible in a subnetwork": (
        {"name": "lite", "zone": "us-west4-a", "accelerator_type": "v5litepod-8",
         "runtime_version": "v2-alpha-tpuv5-lite", "project": "example.com:fashion-project",
         "preemptible": True, "spot": False, "network": "tpu-net", "subnetwork": "tpu-sub"},
        ["create", "lite", "--zone=us-west4-a", "--project=example.com:fashion-project",
         "--accelerator-type=v5litepod-8", "--version=v2-alpha-tpuv5-lite", "--preemptible",
         "--network=tpu-net", "--subnetwork=tpu-sub"]),
    "v5p-8 with a service account": (
        {"name": "p5", "zone": "us-east5-a", "accelerator_type": "v5p-8",
         "runtime_version": "v2-alpha-tpuv5", "project": "fashion-project",
         "service_account": "trainer@fashion-project.iam.gserviceaccount.com"},
        ["create", "p5", "--zone=us-east5-a", "--project=fashion-project",
         "--accelerator-type=v5p-8", "--version=v2-alpha-tpuv5",
         "--service-account=trainer@fashion-project.iam.gserviceaccount.com"]),
    "v6e-8 base image, spot, international label": (
        {"name": "trillium-1", "zone": "asia-northeast1-b", "accelerator_type": "v6e-8",
         "runtime_version": "v2-alpha-tpuv6e", "project": "fashion-project", "spot": True,
         "labels": {"équipe": "vision"}},
        ["create", "trillium-1", "--zone=asia-northeast1-b", "--project=fashion-project",
         "--accelerator-type=v6e-8", "--version=v2-alpha-tpuv6e", "--spot",
         "--labels=équipe=vision"]),
    "v2-32 pod slice": (
        {"name": "pod", "zone": "us-central1-b", "accelerator_type": "v2-32",
         "runtime_version": "tpu-vm-tf-2.15.0-pod-pjrt", "project": "fashion-project"},
        ["create", "pod", "--zone=us-central1-b", "--project=fashion-project",
         "--accelerator-type=v2-32", "--version=tpu-vm-tf-2.15.0-pod-pjrt"]),
}


def _tpu_vm(*args):
    return subprocess.run([sys.executable, "-m", "tpu.vm", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": ROOT})


@pytest.mark.parametrize("key", CONFIGS)
def test_create_command_from_config(key):
    raw, expected = CONFIGS[key]
    assert vm.create_command(vm.parse_config(raw, "tpu.json")) == TPU_VM + expected


def test_the_other_commands_name_the_node_zone_and_project():
    config = vm.parse_config(BASE, "tpu.json")
    node = ["fashion-v4", "--zone=us-central2-b", "--project=fashion-project"]
    assert vm.start_command(config) == TPU_VM + ["start", *node]
    assert vm.stop_command(config) == TPU_VM + ["stop", *node]
    assert vm.stop_command(config, wait=False) == TPU_VM + ["stop", *node, "--async"]
    assert vm.delete_command(config) == TPU_VM + ["delete", *node]
    assert vm.delete_command(config, yes=True) == TPU_VM + ["delete", *node, "--quiet"]
    assert vm.status_command(config) == TPU_VM + ["describe", *node,
                                                  "--format=value(state,health)"]
    assert vm.ssh_command(config) == TPU_VM + ["ssh", *node]
    assert vm.ssh_command(config, "/opt/gcloud", worker="all", command="nproc",
                          extra=["-L", "6006:localhost:6006"]) == [
        "/opt/gcloud", "compute", "tpus", "tpu-vm", "ssh", *node, "--worker=all",
        "--command=nproc", "--", "-L", "6006:localhost:6006"]


@pytest.mark.parametrize("change, message", [
    ({"name": None}, "missing key(s) 'name'"),
    ({"zone": None, "project": None}, "missing key(s) 'zone', 'project'"),
    ({"runtime_version": None}, "missing key(s) 'runtime_version'"),
    ({"tf_version": "2.15"}, "unknown key(s) 'tf_version' (the runtime version is "
                             "'runtime_version')"),
    ({"acelerator": "v3-8"}, "unknown key(s) 'acelerator'"),
    ({"zone": "us-central1"}, "zone 'us-central1' is not a zone such as us-central2-b"),
    ({"zone": "US-CENTRAL1-A"}, "zone 'US-CENTRAL1-A' is not a zone"),
    ({"zone": "us-central1-a "}, "zone 'us-central1-a ' is not a zone"),
    ({"accelerator_type": "v3"}, "accelerator_type 'v3' is not an accelerator type such as "
                                 "v3-8, v4-8, v5litepod-8, v5p-8, v6e-8"),
    ({"accelerator_type": "V3-8"}, "accelerator_type 'V3-8' is not an accelerator type"),
    ({"accelerator_type": "v7-8"}, "accelerator_type 'v7-8' is not an accelerator type"),
    ({"accelerator_type": "v5e-8"}, "accelerator_type 'v5e-8' is not an accelerator type"),
    ({"accelerator_type": "v4-4"}, "v4 sizes count TensorCores in multiples of 8"),
    ({"accelerator_type": "v3-08"}, "accelerator_type 'v3-08' is not an accelerator type"),
    ({"runtime_version": ""}, "runtime_version must be a non-empty string"),
    ({"runtime_version": "TF 2.15"}, "runtime_version 'TF 2.15' is not a TPU software version"),
    ({"runtime_version": 2.15}, "runtime_version must be a non-empty string, got 2.15"),
    ({"name": "Fashion"}, "name 'Fashion' is not lowercase letters"),
    ({"name": "x" * 64}, "is not lowercase letters, digits and '-'"),
    ({"name": "tpu-"}, "name 'tpu-' is not lowercase letters"),
    ({"project": "my_project"}, "project 'my_project' is not a project id"),
    ({"preemptible": True, "spot": True}, "preemptible and spot are both true"),
    ({"spot": "true"}, 'spot must be true or false, got "true"'),
    ({"labels": ["team=vision"]}, "labels must be an object of strings"),
    ({"labels": {"Team": "vision"}}, "label key 'Team' must start with a lowercase letter"),
    ({"labels": {"1st": "x"}}, "label key '1st' must start with a lowercase letter"),
    ({"labels": {"": "x"}}, "label key is empty"),
    ({"labels": {"team": "Vision"}}, "label 'team' value 'Vision' has 'V'"),
    ({"labels": {"team": "a,b"}}, "label 'team' value 'a,b' has ','"),
    ({"labels": {"team.name": "a"}}, "label key 'team.name' has '.'"),
    ({"labels": {"k" * 64: "a"}}, "is longer than 63 characters"),
    ({"labels": {"team": "v" * 64}}, "is longer than 63 characters"),
    ({"labels": {"team": 1}}, "label 'team' must be a string, got 1"),
    ({"labels": {f"k{i}": "v" for i in range(65)}}, "65 labels, at most 64 are allowed"),
    ({"service_account": "trainer"}, "service_account 'trainer' is not an email address"),
    ({"network": ""}, "network must be a non-empty string"),
])
def test_bad_config_is_one_line_and_exit_2(tmp_path, change, message):
    raw = {key: value for key, value in {**BASE, **change}.items() if value is not None}
    path = write_config(tmp_path, raw)
    result = _tpu_vm("create", path, "--dry_run")
    assert result.returncode == 2 and result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"python -m tpu.vm: error: {path}: ") and message in lines[0], lines


@pytest.mark.parametrize("text, message", [
    ('{"name": "x",', "not JSON: Expecting property name enclosed in double quotes at line 1 "
                      "column 14"),
    ("[]", "the config must be a JSON object"),
])
def test_unreadable_config_is_one_line_and_exit_2(tmp_path, text, message):
    path = write_config(tmp_path, text)
    result = _tpu_vm("status", path, "--dry_run")
    assert result.returncode == 2 and result.stderr == f"python -m tpu.vm: error: {path}: {message}\n"


def test_missing_config_file_is_one_line_and_exit_2(tmp_path):
    result = _tpu_vm("stop", tmp_path / "none.json")
    assert result.returncode == 2
    assert result.stderr == (f"python -m tpu.vm: error: {tmp_path / 'none.json'}: cannot read "
                             f"the config: No such file or directory\n")


@pytest.mark.parametrize("verb, flag", [("start", "--vm"), ("stop", "--tpu"), ("start", "--tpu"),
                                        ("stop", "--vm")])
def test_vm_and_tpu_flags_are_refused_in_one_line(tmp_path, verb, flag):
    result = _tpu_vm(verb, write_config(tmp_path, BASE), flag, "--dry_run")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == (f"python -m tpu.vm: error: {verb} {flag}: a TPU VM is one resource, "
                             f"{verb} acts on the VM and its TPU together; drop the flag\n")


@pytest.mark.parametrize("kind", ["spot", "preemptible"])
@pytest.mark.parametrize("verb", ["start", "stop"])
def test_spot_and_preemptible_tpu_vms_are_not_stopped_or_started(tmp_path, kind, verb):
    path = write_config(tmp_path, {**BASE, kind: True})
    result = _tpu_vm(verb, path, "--dry_run")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == (f"python -m tpu.vm: error: {path}: fashion-v4 is a {kind} TPU VM, "
                             f"which cannot be stopped and started again; delete it instead "
                             f"(python -m tpu.vm delete {path})\n")
    assert _tpu_vm("delete", path, "--dry_run").returncode == 0


def test_help_says_a_tpu_vm_is_one_resource():
    for argv in (["-h"], ["stop", "-h"], ["start", "-h"]):
        result = _tpu_vm(*argv)
        assert result.returncode == 0
        assert "A TPU VM is one resource" in " ".join(result.stdout.split())


@pytest.mark.parametrize("argv, expected", [
    (["create"], TPU_VM + CONFIGS["v4-8 spot with labels"][1]),
    (["delete", "--yes"], TPU_VM + ["delete", "fashion-v4", "--zone=us-central2-b",
                                    "--project=fashion-project", "--quiet"]),
    (["status"], TPU_VM + ["describe", "fashion-v4", "--zone=us-central2-b",
                           "--project=fashion-project", "--format=value(state,health)"]),
    (["ssh", "--worker", "all", "--command", "cat /etc/os-release | grep 'NAME=\"x y\"'", "--",
      "-L", "6006:localhost:6006"],
     TPU_VM + ["ssh", "fashion-v4", "--zone=us-central2-b", "--project=fashion-project",
               "--worker=all", "--command=cat /etc/os-release | grep 'NAME=\"x y\"'", "--", "-L",
               "6006:localhost:6006"]),
])
def test_dry_run_prints_the_exact_command_shell_quoted(tmp_path, argv, expected):
    path = write_config(tmp_path, CONFIGS["v4-8 spot with labels"][0])
    verb, *rest = argv
    result = _tpu_vm(verb, path, "--dry_run", *rest)
    assert result.returncode == 0 and result.stderr == ""
    assert result.stdout == shlex.join(expected) + "\n"
    assert shlex.split(result.stdout) == expected


def test_arguments_after_double_dash_are_only_for_ssh(tmp_path):
    result = _tpu_vm("stop", write_config(tmp_path, BASE), "--dry_run", "--", "-v")
    assert result.returncode == 2
    assert result.stderr == ("python -m tpu.vm: error: stop takes no arguments after --; "
                             "only ssh passes them on\n")


@pytest.mark.parametrize("verb, extra", [
    ("create", []), ("start", []), ("stop", []), ("stop", ["--async"]), ("delete", ["--yes"]),
    ("ssh", ["--command", "nproc"]),
])
def test_real_runs_call_gcloud_with_the_command(tmp_path, verb, extra):
    gcloud = RecordingGcloud(tmp_path)
    path = write_config(tmp_path, BASE)
    dry = _tpu_vm(verb, path, "--dry_run", "--gcloud", gcloud.path, *extra)
    result = _tpu_vm(verb, path, "--gcloud", gcloud.path, *extra)
    assert result.returncode == 0, result.stderr
    assert gcloud.calls() == [shlex.split(dry.stdout)[1:]]


def test_gcloud_from_the_environment_and_its_exit_status_passes_through(tmp_path):
    gcloud = RecordingGcloud(tmp_path, status=3)
    path = write_config(tmp_path, BASE)
    result = subprocess.run([sys.executable, "-m", "tpu.vm", "start", path], cwd=ROOT,
                            capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": ROOT, vm.GCLOUD_ENV: gcloud.path})
    assert result.returncode == 3
    assert gcloud.calls() == [["compute", "tpus", "tpu-vm", "start", "fashion-v4",
                               "--zone=us-central2-b", "--project=fashion-project"]]


def test_status_prints_name_zone_and_state(tmp_path):
    gcloud = RecordingGcloud(tmp_path)
    result = _tpu_vm("status", write_config(tmp_path, BASE), "--gcloud", gcloud.path)
    assert result.returncode == 0
    assert result.stdout == "fashion-v4 (us-central2-b): READY HEALTHY\n"
    assert gcloud.calls()[0][3:5] == ["describe", "fashion-v4"]


def test_missing_gcloud_is_one_line_and_exit_2(tmp_path):
    result = _tpu_vm("create", write_config(tmp_path, BASE), "--gcloud", tmp_path / "no-gcloud")
    assert result.returncode == 2
    assert result.stderr == (f"python -m tpu.vm: error: {tmp_path / 'no-gcloud'} not found: "
                             f"install the Google Cloud CLI, or pass --gcloud PATH (or set "
                             f"${vm.GCLOUD_ENV})\n")


# The real Google Cloud CLI, where this machine has it, with no network (a new network
# namespace: `unshare -rn`) and an empty configuration directory: gcloud parses the
# command, then stops at authentication; given an access token, it logs the HTTP
# request it would send (--log-http) and fails to connect.

def _can_isolate() -> bool:
    return shutil.which("unshare") is not None and subprocess.run(
        ["unshare", "-rn", "true"], capture_output=True).returncode == 0


needs_gcloud = pytest.mark.skipif(
    shutil.which("gcloud") is None or not _can_isolate(),
    reason="needs the Google Cloud CLI and `unshare -rn` (a namespace without network)")


def _gcloud_env(tmp_path):
    config_dir = tmp_path / "gcloud-config"
    config_dir.mkdir(exist_ok=True)
    return {**os.environ, "CLOUDSDK_CONFIG": str(config_dir),
            "CLOUDSDK_CORE_CHECK_GCE_METADATA": "false", "CLOUDSDK_CORE_DISABLE_PROMPTS": "1",
            "CLOUDSDK_COMPONENT_MANAGER_DISABLE_UPDATE_CHECK": "true",
            "CLOUDSDK_CORE_DISABLE_USAGE_REPORTING": "true"}


def _isolated_gcloud(tmp_path, argv):
    return subprocess.run(["unshare", "-rn", shutil.which("gcloud"), *argv[1:]],
                          capture_output=True, text=True, env=_gcloud_env(tmp_path), timeout=120)


def _first_request(tmp_path, argv):
    """The method, URI and body of the first HTTP request gcloud makes for ``argv`` with an
    access token, read from --log-http; gcloud is ended once it is logged (it would retry)."""
    token = tmp_path / "token"
    token.write_text("not-a-real-token\n")
    process = subprocess.Popen(
        ["unshare", "-rn", shutil.which("gcloud"), *argv[1:], f"--access-token-file={token}",
         "--log-http"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        env=_gcloud_env(tmp_path))
    request, body, in_body = {}, [], False
    try:
        for line in process.stderr:
            line = line.rstrip("\n")
            if line.startswith(("uri: ", "method: ")) and not request.get("done"):
                key, value = line.split(": ", 1)
                request.setdefault(key, value)
            elif line == "== body start ==":
                in_body = True
            elif line == "== body end ==":
                break
            elif in_body:
                body.append(line)
    finally:
        process.kill()
        process.wait()
    assert "uri" in request, "gcloud logged no request"
    return request["method"], request["uri"], json.loads("\n".join(body)) if "".join(body) else None


@needs_gcloud
@pytest.mark.parametrize("verb", ["create", "start", "stop", "delete", "status", "ssh"])
def test_real_gcloud_parses_every_command(tmp_path, verb):
    config = vm.parse_config(CONFIGS["v4-8 spot with labels"][0], "tpu.json")
    argv = {"create": vm.create_command(config), "start": vm.start_command(config),
            "stop": vm.stop_command(config, wait=False), "delete": vm.delete_command(config, yes=True),
            "status": vm.status_command(config),
            "ssh": vm.ssh_command(config, worker="all", command="nproc", extra=["-v"])}[verb]
    result = _isolated_gcloud(tmp_path, argv)
    # Past argument parsing, gcloud stops at authentication (exit 1); a flag it does not
    # know would have been exit 2 and "unrecognized arguments".
    assert result.returncode == 1, result.stderr
    assert "You do not currently have an active account selected" in result.stderr


@needs_gcloud
def test_real_gcloud_refuses_a_flag_it_does_not_know(tmp_path):
    argv = vm.start_command(vm.parse_config(BASE, "tpu.json")) + ["--worker=all"]
    result = _isolated_gcloud(tmp_path, argv)
    assert result.returncode == 2 and "unrecognized arguments: --worker=all" in result.stderr


API = "https://tpu.googleapis.com/v2/projects/{project}/locations/{zone}/nodes"


@needs_gcloud
@pytest.mark.parametrize("key, expected_node", [
    ("v3-8 on demand", {"acceleratorType": "v3-8", "runtimeVersion": "tpu-vm-tf-2.15.0-pjrt",
                        "schedulingConfig": {"preemptible": False, "reserved": False,
                                             "spot": False},
                        "networkConfig": {"enableExternalIps": True, "network": "default"}}),
    ("v4-8 spot with labels", {
        "acceleratorType": "v4-8", "runtimeVersion": "tpu-vm-tf-2.15.0-pjrt",
        "schedulingConfig": {"preemptible": False, "reserved": False, "spot": True},
        "labels": {"team": "vision", "run": "sn143-r1", "cost_centre": ""},
        "networkConfig": {"enableExternalIps": True, "network": "default"}}),
    ("v5litepod-8 preemptible in a subnetwork", {
        "acceleratorType": "v5litepod-8", "runtimeVersion": "v2-alpha-tpuv5-lite",
        "schedulingConfig": {"preemptible": True, "reserved": False, "spot": False},
        "networkConfig": {"enableExternalIps": True, "network": "tpu-net",
                          "subnetwork": "tpu-sub"}}),
    ("v5p-8 with a service account", {
        "acceleratorType": "v5p-8", "runtimeVersion": "v2-alpha-tpuv5",
        "schedulingConfig": {"preemptible": False, "reserved": False, "spot": False},
        "networkConfig": {"enableExternalIps": True, "network": "default"},
        "serviceAccount": {"email": "trainer@fashion-project.iam.gserviceaccount.com"}}),
])
def test_real_gcloud_builds_the_cloud_tpu_v2_create_request(tmp_path, key, expected_node):
    raw = CONFIGS[key][0]
    method, uri, body = _first_request(tmp_path, vm.create_command(vm.parse_config(raw, "x")))
    assert method == "POST"
    assert uri == API.format(**raw) + f"?alt=json&nodeId={raw['name']}"
    # gcloud also sends its own defaults for what the config does not set.
    assert {key: body[key] for key in expected_node} == expected_node
    assert set(body) - set(expected_node) <= {"metadata", "shieldedInstanceConfig", "labels"}


@needs_gcloud
@pytest.mark.parametrize("verb, method, suffix", [
    ("start", "POST", ":start?alt=json"), ("stop", "POST", ":stop?alt=json"),
    ("delete", "DELETE", "?alt=json"), ("status", "GET", "?alt=json"),
])
def test_real_gcloud_sends_the_lifecycle_requests_to_the_node(tmp_path, verb, method, suffix):
    config = vm.parse_config(BASE, "tpu.json")
    argv = {"start": vm.start_command(config), "stop": vm.stop_command(config, wait=False),
            "delete": vm.delete_command(config, yes=True),
            "status": vm.status_command(config)}[verb]
    got_method, uri, _ = _first_request(tmp_path, argv)
    assert (got_method, uri) == (method, API.format(**BASE) + "/fashion-v4" + suffix)

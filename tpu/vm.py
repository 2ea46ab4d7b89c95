"""Creates, starts, stops, deletes, describes and opens a shell on a Cloud TPU VM.

  python -m tpu.vm {create,start,stop,delete,status,ssh} CONFIG.json [--dry_run] [--gcloud PATH]

A TPU VM is one resource: the TPU host is the VM, and `start` and `stop` act on
both; there is no separate VM to keep running. Every command runs
`gcloud compute tpus tpu-vm ...` (the Cloud TPU API v2) with an argument list
built from CONFIG; `--dry_run` prints the exact command, shell-quoted, and runs
nothing. See README "TPU VMs: python -m tpu.vm" for the config format.
"""
import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

# Environment variable naming the gcloud executable when --gcloud is not given.
GCLOUD_ENV = "TPU_VM_GCLOUD"

REQUIRED_KEYS = ("name", "zone", "accelerator_type", "runtime_version", "project")
OPTIONAL_KEYS = ("preemptible", "spot", "labels", "network", "subnetwork", "service_account")

# The Cloud TPU API's node ids, as Compute Engine names resources.
_NAME = re.compile(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?")
# REGION-ZONE as Google Cloud spells them: us-central1-a, europe-west4-b, us-east5-a.
_ZONE = re.compile(r"[a-z]+-[a-z]+[0-9]+-[a-z]")
# Project ids, optionally domain-scoped (example.com:my-project).
_PROJECT = re.compile(r"([a-z][-a-z0-9.]*[a-z0-9]:)?[a-z][-a-z0-9]{4,28}[a-z0-9]")
# Runtime versions (TPU software versions): tpu-ubuntu2204-base, tpu-vm-tf-2.15.0-pjrt,
# v2-alpha-tpuv5-lite, v2-alpha-tpuv6e.
_RUNTIME = re.compile(r"[a-z0-9][-a-z0-9._]*")
# Accelerator types the Cloud TPU API creates: TensorCores for v2, v3, v4 and v5p
# (multiples of 8: v3-8, v4-8, v5p-8), chips for v5e and v6e (v5litepod-8, v6e-8).
_ACCELERATOR = re.compile(r"(v2|v3|v4|v5p|v5litepod|v6e)-([1-9][0-9]*)")
_CORE_COUNTED = ("v2", "v3", "v4", "v5p")
_ACCELERATOR_EXAMPLES = "v3-8, v4-8, v5litepod-8, v5p-8, v6e-8"
_SERVICE_ACCOUNT = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_MAX_LABELS = 64
_LABEL_LENGTH = 63


class ConfigError(ValueError):
    """A TPU VM config that cannot be used; str() is one line that names the file."""


@dataclass(frozen=True)
class TpuVmConfig:
    """One TPU VM, as a config file describes it."""
    name: str
    zone: str
    accelerator_type: str
    runtime_version: str
    project: str
    preemptible: bool = False
    spot: bool = False
    labels: Tuple[Tuple[str, str], ...] = ()
    network: Optional[str] = None
    subnetwork: Optional[str] = None
    service_account: Optional[str] = None

    @property
    def restartable(self) -> bool:
        """Spot and preemptible TPU VMs cannot be stopped and started again, only deleted."""
        return not (self.spot or self.preemptible)


def _label_problem(text: str, what: str, first_letter: bool) -> Optional[str]:
    """What makes ``text`` an invalid label key or value, by Google Cloud's rules: at most
    63 characters of lowercase letters (international ones too), digits, '_' and '-';
    keys start with a lowercase letter and are not empty."""
    if len(text) > _LABEL_LENGTH:
        return f"{what} {text!r} is longer than {_LABEL_LENGTH} characters"
    if first_letter and not text:
        return f"{what} is empty"
    if first_letter and not (text[0].isalpha() and text[0] == text[0].lower()):
        return f"{what} {text!r} must start with a lowercase letter"
    for char in text:
        if not (char in "-_" or char.isdigit() or (char.isalpha() and char == char.lower())):
            return (f"{what} {text!r} has {char!r}: only lowercase letters, digits, "
                    f"'_' and '-' are allowed")
    return None


def _labels(value, where: str) -> Tuple[Tuple[str, str], ...]:
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: labels must be an object of strings, got {json.dumps(value)}")
    if len(value) > _MAX_LABELS:
        raise ConfigError(f"{where}: {len(value)} labels, at most {_MAX_LABELS} are allowed")
    pairs = []
    for key, label in value.items():
        if not isinstance(label, str):
            raise ConfigError(f"{where}: label {key!r} must be a string, got {json.dumps(label)}")
        problem = (_label_problem(key, "label key", first_letter=True)
                   or _label_problem(label, f"label {key!r} value", first_letter=False))
        if problem:
            raise ConfigError(f"{where}: {problem}")
        pairs.append((key, label))
    return tuple(pairs)


def _accelerator_problem(value: str) -> Optional[str]:
    match = _ACCELERATOR.fullmatch(value)
    if not match:
        return f"accelerator_type {value!r} is not an accelerator type such as {_ACCELERATOR_EXAMPLES}"
    generation, count = match.group(1), int(match.group(2))
    if generation in _CORE_COUNTED and count % 8:
        return (f"accelerator_type {value!r}: {generation} sizes count TensorCores in "
                f"multiples of 8 ({generation}-8, {generation}-16, ...)")
    return None


def parse_config(raw, where: str) -> TpuVmConfig:
    """The config in ``raw`` (the parsed JSON of file ``where``), checked; raises
    ConfigError with one line naming the first problem."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: the config must be a JSON object")
    unknown = [key for key in raw if key not in REQUIRED_KEYS + OPTIONAL_KEYS]
    if unknown:
        hint = (" (the runtime version is 'runtime_version')"
                if set(unknown) & {"tf_version", "version"} else "")
        raise ConfigError(f"{where}: unknown key(s) {', '.join(map(repr, unknown))}{hint}; "
                          f"known: {', '.join(REQUIRED_KEYS + OPTIONAL_KEYS)}")
    missing = [key for key in REQUIRED_KEYS if key not in raw]
    if missing:
        raise ConfigError(f"{where}: missing key(s) {', '.join(map(repr, missing))}")
    for key in REQUIRED_KEYS + ("network", "subnetwork", "service_account"):
        if key in raw and not (isinstance(raw[key], str) and raw[key]):
            raise ConfigError(f"{where}: {key} must be a non-empty string, got {json.dumps(raw[key])}")
    for key in ("preemptible", "spot"):
        if key in raw and not isinstance(raw[key], bool):
            raise ConfigError(f"{where}: {key} must be true or false, got {json.dumps(raw[key])}")
    checks = [
        (_NAME, "name", "lowercase letters, digits and '-', starting with a letter, "
                        "at most 63 characters"),
        (_ZONE, "zone", "a zone such as us-central2-b or europe-west4-a"),
        (_PROJECT, "project", "a project id: 6-30 lowercase letters, digits and '-'"),
        (_RUNTIME, "runtime_version", "a TPU software version such as tpu-ubuntu2204-base "
                                      "or tpu-vm-tf-2.15.0-pjrt"),
    ]
    for pattern, key, expected in checks:
        if not pattern.fullmatch(raw[key]):
            raise ConfigError(f"{where}: {key} {raw[key]!r} is not {expected}")
    problem = _accelerator_problem(raw["accelerator_type"])
    if problem:
        raise ConfigError(f"{where}: {problem}")
    if raw.get("preemptible") and raw.get("spot"):
        raise ConfigError(f"{where}: preemptible and spot are both true; a TPU VM is one or the "
                          f"other (spot is the newer kind)")
    if "service_account" in raw and not _SERVICE_ACCOUNT.fullmatch(raw["service_account"]):
        raise ConfigError(f"{where}: service_account {raw['service_account']!r} is not an email "
                          f"address")
    return TpuVmConfig(
        name=raw["name"], zone=raw["zone"], accelerator_type=raw["accelerator_type"],
        runtime_version=raw["runtime_version"], project=raw["project"],
        preemptible=raw.get("preemptible", False), spot=raw.get("spot", False),
        labels=_labels(raw.get("labels", {}), where), network=raw.get("network"),
        subnetwork=raw.get("subnetwork"), service_account=raw.get("service_account"))


def load_config(path: str) -> TpuVmConfig:
    """Reads and checks the JSON config at ``path``; raises ConfigError (one line)."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as error:
        raise ConfigError(f"{path}: cannot read the config: {error.strerror or error}") from None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as error:
        raise ConfigError(f"{path}: not JSON: {error.msg} at line {error.lineno} "
                          f"column {error.colno}") from None
    return parse_config(raw, path)


def _tpu_vm(gcloud: str, verb: str, config: TpuVmConfig) -> List[str]:
    return [gcloud, "compute", "tpus", "tpu-vm", verb, config.name,
            f"--zone={config.zone}", f"--project={config.project}"]


def create_command(config: TpuVmConfig, gcloud: str = "gcloud") -> List[str]:
    argv = _tpu_vm(gcloud, "create", config) + [
        f"--accelerator-type={config.accelerator_type}", f"--version={config.runtime_version}"]
    if config.spot:
        argv.append("--spot")
    if config.preemptible:
        argv.append("--preemptible")
    if config.labels:
        argv.append("--labels=" + ",".join(f"{key}={value}" for key, value in config.labels))
    if config.network:
        argv.append(f"--network={config.network}")
    if config.subnetwork:
        argv.append(f"--subnetwork={config.subnetwork}")
    if config.service_account:
        argv.append(f"--service-account={config.service_account}")
    return argv


def start_command(config: TpuVmConfig, gcloud: str = "gcloud") -> List[str]:
    return _tpu_vm(gcloud, "start", config)


def stop_command(config: TpuVmConfig, gcloud: str = "gcloud", wait: bool = True) -> List[str]:
    """``wait=False`` returns as soon as the service has the request (gcloud --async):
    what a job running on the TPU VM itself needs, as the stop ends it."""
    return _tpu_vm(gcloud, "stop", config) + ([] if wait else ["--async"])


def delete_command(config: TpuVmConfig, gcloud: str = "gcloud", yes: bool = False) -> List[str]:
    """Without ``yes`` gcloud asks for confirmation on the terminal."""
    return _tpu_vm(gcloud, "delete", config) + (["--quiet"] if yes else [])


def status_command(config: TpuVmConfig, gcloud: str = "gcloud") -> List[str]:
    return _tpu_vm(gcloud, "describe", config) + ["--format=value(state,health)"]


def ssh_command(config: TpuVmConfig, gcloud: str = "gcloud", worker: Optional[str] = None,
                command: Optional[str] = None, extra: Sequence[str] = ()) -> List[str]:
    """``extra`` goes to ssh itself, after gcloud's ``--``."""
    argv = _tpu_vm(gcloud, "ssh", config)
    if worker is not None:
        argv.append(f"--worker={worker}")
    if command is not None:
        argv.append(f"--command={command}")
    if extra:
        argv += ["--", *extra]
    return argv


def not_restartable_line(config: TpuVmConfig, where: str) -> str:
    kind = "spot" if config.spot else "preemptible"
    return (f"{where}: {config.name} is a {kind} TPU VM, which cannot be stopped and started "
            f"again; delete it instead (python -m tpu.vm delete {where})")


def gcloud_executable(flag: Optional[str] = None) -> str:
    """--gcloud, else $TPU_VM_GCLOUD, else gcloud on PATH."""
    return flag or os.environ.get(GCLOUD_ENV) or "gcloud"


def executable_exists(executable: str) -> bool:
    """A path that is an executable file, or a name found on PATH."""
    if os.sep in executable:
        return os.path.isfile(executable) and os.access(executable, os.X_OK)
    return shutil.which(executable) is not None


def run_command(argv: Sequence[str]) -> int:
    """Runs ``argv`` (no shell), its output on this terminal; returns its exit status.
    Raises FileNotFoundError when the executable does not exist."""
    if not executable_exists(argv[0]):
        raise FileNotFoundError(argv[0])
    return subprocess.run(list(argv), check=False).returncode


class _OneLineErrors(argparse.ArgumentParser):
    """Bad flags end the run with one line on stderr and exit status 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


_ONE_RESOURCE = ("A TPU VM is one resource: the VM is the TPU's host, and start and stop act on "
                 "both. --vm and --tpu (which once chose the VM or the TPU node) are refused.")


def build_flags() -> argparse.ArgumentParser:
    flags = _OneLineErrors(prog="python -m tpu.vm", description=__doc__.split("\n")[0],
                           epilog=_ONE_RESOURCE)
    commands = flags.add_subparsers(dest="verb", required=True, metavar="COMMAND",
                                    parser_class=_OneLineErrors)
    helps = {"create": "create the TPU VM", "start": "start a stopped TPU VM",
             "stop": "stop the TPU VM (no TPU charges while stopped; the disk is kept)",
             "delete": "delete the TPU VM", "status": "print the TPU VM's state and health",
             "ssh": "open a shell on the TPU VM (or run --command)"}
    for verb, text in helps.items():
        sub = commands.add_parser(verb, help=text, description=text,
                                  epilog=_ONE_RESOURCE if verb in ("start", "stop") else None)
        sub.add_argument("config", metavar="CONFIG", help="JSON config of the TPU VM")
        sub.add_argument("--dry_run", action="store_true",
                         help="print the gcloud command, shell-quoted, and run nothing")
        sub.add_argument("--gcloud", metavar="PATH",
                         help=f"gcloud executable (default: ${GCLOUD_ENV}, else gcloud on PATH)")
        if verb in ("start", "stop"):
            sub.add_argument("--vm", action="store_true", help="refused: see below")
            sub.add_argument("--tpu", action="store_true", help="refused: see below")
        if verb == "stop":
            sub.add_argument("--async", dest="no_wait", action="store_true",
                             help="return once the service has the request")
        if verb == "delete":
            sub.add_argument("--yes", action="store_true", help="do not ask for confirmation")
        if verb == "ssh":
            sub.add_argument("--worker", help="host of a multi-host slice: 0, 1, ... or all")
            sub.add_argument("--command", help="run this on the TPU VM instead of a shell")
            sub.epilog = "Arguments after -- go to ssh itself, e.g. -- -L 6006:localhost:6006."
    return flags


def command_for(args, config: TpuVmConfig) -> List[str]:
    gcloud = gcloud_executable(args.gcloud)
    if args.verb == "create":
        return create_command(config, gcloud)
    if args.verb == "start":
        return start_command(config, gcloud)
    if args.verb == "stop":
        return stop_command(config, gcloud, wait=not args.no_wait)
    if args.verb == "delete":
        return delete_command(config, gcloud, yes=args.yes)
    if args.verb == "status":
        return status_command(config, gcloud)
    return ssh_command(config, gcloud, args.worker, args.command, args.ssh_args)


def _split_ssh_args(argv: List[str]) -> Tuple[List[str], List[str]]:
    """The flags, and what follows the first ``--`` (ssh's own arguments)."""
    if "--" not in argv:
        return argv, []
    at = argv.index("--")
    return argv[:at], argv[at + 1:]


def main(argv: Optional[Sequence[str]] = None) -> int:
    flags = build_flags()
    argv, ssh_args = _split_ssh_args(list(sys.argv[1:] if argv is None else argv))
    args = flags.parse_args(argv)
    if ssh_args and args.verb != "ssh":
        flags.error(f"{args.verb} takes no arguments after --; only ssh passes them on")
    args.ssh_args = ssh_args
    if getattr(args, "vm", False) or getattr(args, "tpu", False):
        flags.error(f"{args.verb} --{'vm' if args.vm else 'tpu'}: a TPU VM is one resource, "
                    f"{args.verb} acts on the VM and its TPU together; drop the flag")
    try:
        config = load_config(args.config)
    except ConfigError as error:
        flags.error(str(error))
    if args.verb in ("start", "stop") and not config.restartable:
        flags.error(not_restartable_line(config, args.config))
    command = command_for(args, config)
    if args.dry_run:
        print(shlex.join(command))
        return 0
    if args.verb == "status":
        return _status(flags, config, command)
    try:
        return run_command(command)
    except FileNotFoundError:
        flags.error(f"{command[0]} not found: install the Google Cloud CLI, or pass --gcloud PATH "
                    f"(or set ${GCLOUD_ENV})")


def _status(flags: argparse.ArgumentParser, config: TpuVmConfig, command: List[str]) -> int:
    """Prints ``NAME (ZONE): STATE HEALTH``; gcloud's errors (not found, no access) pass through."""
    if not executable_exists(command[0]):
        flags.error(f"{command[0]} not found: install the Google Cloud CLI, or pass --gcloud PATH "
                    f"(or set ${GCLOUD_ENV})")
    result = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=False)
    if result.returncode == 0:
        state = " ".join(result.stdout.split()) or "unknown"
        print(f"{config.name} ({config.zone}): {state}")
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())

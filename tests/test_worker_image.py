"""The Dataflow GPU worker image, checked without Docker: its base, its install and its pins.

No Docker daemon is available to the tests, so the image is never built here. What is checked:
the Dockerfile's instructions, that constraints.txt pins TensorFlow's CUDA wheels at the versions
the installed TensorFlow asks for, that the README launches the image the way Dataflow's
custom-container guide says, and that the pipelines import in an interpreter started the way the
image's boot program starts the SDK harness.
"""
import importlib.metadata
import os
import re
import runpy
import shlex
import subprocess
import sys

import setuptools
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BOOT = "/opt/apache/beam/boot"


def _read(name):
    with open(os.path.join(ROOT, name)) as f:
        return f.read()


def _pins():
    """constraints.txt as {canonical name: version}."""
    pins = {}
    for line in _read("constraints.txt").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = line.split("==")
            pins[canonicalize_name(name)] = version
    return pins


def _pinned_python():
    """The Python version constraints.txt was compiled for (its header's --python-version)."""
    match = re.search(r"--python-version (\d+\.\d+)", _read("constraints.txt"))
    assert match, "constraints.txt does not say which Python it was compiled for"
    return match.group(1)


def _dockerfile():
    """The Dockerfile's instructions as (INSTRUCTION, arguments), continuations joined."""
    instructions, current = [], ""
    for line in _read("Dockerfile").splitlines():
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):  # a comment inside a continued instruction
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        current += stripped
        keyword, _, arguments = current.partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
        current = ""
    assert not current, "the Dockerfile ends inside a continued instruction"
    return instructions


def _env(instructions):
    """Every variable the Dockerfile sets with ENV (both the KEY=VALUE and the KEY VALUE forms)."""
    env = {}
    for keyword, arguments in instructions:
        if keyword != "ENV":
            continue
        words = shlex.split(arguments)
        if "=" in words[0]:
            env.update(word.split("=", 1) for word in words)
        else:
            env[words[0]] = " ".join(words[1:])
    return env


def _setup_kwargs(monkeypatch):
    """The keyword arguments setup.py passes to setuptools.setup, without building anything."""
    captured = {}
    monkeypatch.setattr(setuptools, "setup", lambda **kwargs: captured.update(kwargs))
    runpy.run_path(os.path.join(ROOT, "setup.py"))
    return captured


def test_every_cuda_wheel_of_tensorflow_is_pinned_at_the_version_it_requires():
    pins = _pins()
    tensorflow = importlib.metadata.version("tensorflow")
    assert pins["tensorflow"] == tensorflow, (
        "the installed TensorFlow is not the pinned one; its metadata would not be the image's")
    cuda = [Requirement(text) for text in importlib.metadata.requires("tensorflow")]
    cuda = [r for r in cuda if r.marker is not None
            and r.marker.evaluate({"extra": "and-cuda"}) and not r.marker.evaluate({"extra": ""})]
    assert len(cuda) >= 10, f"tensorflow {tensorflow} lists only {len(cuda)} and-cuda requirements"
    problems = []
    for requirement in cuda:
        pinned = pins.get(canonicalize_name(requirement.name))
        if pinned is None:
            problems.append(f"{requirement.name} is not pinned")
        elif not requirement.specifier.contains(pinned, prereleases=True):
            problems.append(f"{requirement.name}=={pinned} does not satisfy {requirement}")
    assert not problems, "; ".join(problems)


def test_the_gpu_extra_asks_for_tensorflows_cuda_wheels_and_the_test_extra_does_not(monkeypatch):
    extras = _setup_kwargs(monkeypatch)["extras_require"]
    gpu = [Requirement(text) for text in extras["gpu"]]
    assert any(r.name == "tensorflow" and "and-cuda" in r.extras for r in gpu), extras["gpu"]
    test = [Requirement(text) for text in extras["test"]]
    assert not any(r.name == "tensorflow" or r.name.startswith("nvidia-") for r in test)


def test_the_image_starts_from_the_beam_sdk_image_of_the_pinned_python_and_beam():
    instructions = _dockerfile()
    bases = [arguments.split()[0] for keyword, arguments in instructions if keyword == "FROM"]
    expected = f"apache/beam_python{_pinned_python()}_sdk:{_pins()['apache-beam']}"
    assert bases == [expected], f"FROM {bases}, expected only {expected}"
    entrypoints = [arguments for keyword, arguments in instructions if keyword == "ENTRYPOINT"]
    assert all(BOOT in arguments for arguments in entrypoints), (
        f"the entrypoint must stay Beam's boot program: {entrypoints}")


def test_the_image_runs_the_sdk_in_its_default_environment_without_a_venv_on_path():
    instructions = _dockerfile()
    env = _env(instructions)
    assert env.get("RUN_PYTHON_SDK_IN_DEFAULT_ENVIRONMENT") == "1", env
    assert "VIRTUAL_ENV" not in env and "PYTHONPATH" not in env, env
    assert "PATH" not in env, f"the image changes PATH: {env['PATH'] if 'PATH' in env else ''}"
    runs = [arguments for keyword, arguments in instructions if keyword == "RUN"]
    assert not [r for r in runs if re.search(r"\b(venv|virtualenv|conda)\b", r)], runs


def test_the_image_installs_the_gpu_extra_from_the_constraints_and_checks_the_imports():
    runs = [arguments for keyword, arguments in _dockerfile() if keyword == "RUN"]
    installs = [r for r in runs if "pip install" in r]
    assert len(installs) == 1, f"one install step expected, found {installs}"
    words = shlex.split(installs[0].split("pip install", 1)[1].split("&&", 1)[0])
    assert "-c" in words and words[words.index("-c") + 1].endswith("constraints.txt"), words
    targets = [w for w in words if not w.startswith("-") and not w.endswith("constraints.txt")]
    assert targets and all(re.fullmatch(r"\S*\[gpu\]", t) for t in targets), targets
    check = installs[0].split("pip install", 1)[1]
    for module in ("beam_pipelines.predict", "beam_pipelines.make_records",
                   "apache_beam.runners.worker.sdk_worker_main"):
        assert module in check, f"the build does not import {module} after installing"


def _commands(markdown):
    """Shell commands in the fenced blocks of a Markdown text, continuation lines joined."""
    commands = []
    for block in re.findall(r"```[^\n]*\n(.*?)```", markdown, flags=re.S):
        commands.extend(c for c in re.sub(r"\\\n\s*", " ", block).splitlines() if c.strip())
    return commands


def test_readme_launches_the_custom_image_from_the_container_and_installs_nothing_at_start():
    custom = [c for c in _commands(_read("README.md")) if "--sdk_container_image" in c]
    assert custom, "the README shows no command with the worker image"
    for command in custom:
        assert re.search(r"--sdk_location[= ]container\b", command), command
        for option in ("--setup_file", "--requirements_file", "--extra_package"):
            assert option not in command, f"{option} with the worker image: {command}"
        assert "worker_accelerator=" in command and "--disk_size_gb" in command, command


def test_the_pipelines_import_in_an_interpreter_started_the_way_boot_starts_the_sdk(tmp_path):
    """boot (sdks/python/container/boot.go), with RUN_PYTHON_SDK_IN_DEFAULT_ENVIRONMENT set,
    creates no venv: it runs `python -m apache_beam.runners.worker.sdk_worker_main` with `python`
    from the image's PATH, in the container's working directory, with the image's environment
    plus the variables it sets itself (PIPELINE_OPTIONS, SEMI_PERSISTENT_DIRECTORY, the API
    descriptors, WORKER_ID). Nothing puts the sources on sys.path: the package must be installed.
    Here: this interpreter, an environment built from nothing (no PYTHONPATH), a working
    directory that holds no sources."""
    workdir = tmp_path / "workdir"
    workdir.mkdir()
    env = {
        "PATH": os.pathsep.join([os.path.dirname(sys.executable), "/usr/local/bin", "/usr/bin",
                                 "/bin"]),
        "HOME": str(tmp_path),
        "RUN_PYTHON_SDK_IN_DEFAULT_ENVIRONMENT": "1",
        "PIPELINE_OPTIONS": "{}",
        "SEMI_PERSISTENT_DIRECTORY": str(tmp_path / "semi_persistent"),
        "LOGGING_API_SERVICE_DESCRIPTOR": 'url: "localhost:1"',
        "CONTROL_API_SERVICE_DESCRIPTOR": 'url: "localhost:1"',
        "RUNNER_CAPABILITIES": "",
        "WORKER_ID": "sdk-0-0",
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    modules = ["apache_beam.runners.worker.sdk_worker_main", "beam_pipelines.predict",
               "beam_pipelines.make_records"]
    script = (
        "import importlib, importlib.metadata\n"
        f"for name in {modules!r}:\n"
        "    print(name, importlib.import_module(name).__file__)\n"
        "print('distribution', importlib.metadata.version('fashion-segmentation'))\n")
    result = subprocess.run([sys.executable, "-c", script], cwd=workdir, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    files = dict(line.split(" ", 1) for line in result.stdout.splitlines())
    assert set(files) == set(modules) | {"distribution"}, result.stdout
    for name in modules:
        assert not files[name].startswith(str(tmp_path)), f"{name} came from the cwd: {files[name]}"

"""Builds an ExperimentConfig from a preset or YAML file plus ``key.sub=value`` overrides.

Unknown keys and values of the wrong type are errors that name the dotted key.
Override values are read as YAML scalars/lists (``0.5``, ``true``, ``[1, 2]``).
Text that is not YAML (or uses a tag that would build a Python object, which
``yaml.safe_load`` refuses) is a ConfigError naming the file or override, the
line and column, and the problem.
"""
import dataclasses
import os
import typing
from typing import Any, Dict, Optional, Sequence

import yaml

from model.config.schema import ExperimentConfig

# The resolved config a training job keeps in its model_dir (tpu.model_dir) and that
# model.import_checkpoint --model_dir writes beside its checkpoint.
MODEL_DIR_CONFIG_FILE = "config.yaml"
PRESET_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs")


class ConfigError(ValueError):
    """A configuration key or value is invalid; the message names the dotted key, or the
    file or override that is not valid YAML."""


def preset_names():
    return sorted(name[:-5] for name in os.listdir(PRESET_DIR) if name.endswith(".yaml"))


def parse_yaml(text, source: str) -> Any:
    """``yaml.safe_load(text)``; a YAMLError becomes a one-line ConfigError naming ``source``."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        problem = getattr(error, "problem", None) or (str(error).splitlines() or [repr(error)])[0]
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        hint = (" (a config is plain YAML: tags that build Python objects are refused)"
                if isinstance(error, yaml.constructor.ConstructorError) else "")
        raise ConfigError(f"{source}: not valid YAML{where}: {problem}{hint}") from None


def _read_yaml(preset_or_path: str) -> Dict[str, Any]:
    path = os.path.join(PRESET_DIR, preset_or_path + ".yaml")
    if not os.path.exists(path):
        path = preset_or_path
    if not os.path.exists(path):
        raise ConfigError(f"{preset_or_path!r} is neither a preset ({', '.join(preset_names())}) "
                          "nor a YAML file")
    try:
        with open(path, "rb") as stream:
            text = stream.read()
    except OSError as error:
        raise ConfigError(f"{path}: cannot be read ({error.strerror or error})") from None
    data = parse_yaml(text, path) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping at the top level")
    return data


def _apply_override(data: Dict[str, Any], override: str) -> None:
    key, separator, text = override.partition("=")
    if not separator or not key:
        raise ConfigError(f"override {override!r} must look like key.sub=value")
    node = data
    parts = key.strip().split(".")
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{key}: {part} is not a section")
        node = child
    node[parts[-1]] = parse_yaml(text, f"override {override!r}")


def _convert(value: Any, kind: Any, key: str) -> Any:
    origin = typing.get_origin(kind)
    if dataclasses.is_dataclass(kind):
        return _build(kind, value, key)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        item_kind = typing.get_args(kind)[0]
        return tuple(_convert(item, item_kind, f"{key}[{i}]") for i, item in enumerate(value))
    if kind is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if kind is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    raise ConfigError(f"{key}: unsupported type {kind}")


def _build(cls, data: Any, prefix: str):
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix or 'config'}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = {field.name for field in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        dotted = ", ".join(f"{prefix}.{name}" if prefix else name for name in unknown)
        raise ConfigError(f"unknown config key(s): {dotted}")
    values = {}
    for name, value in data.items():
        key = f"{prefix}.{name}" if prefix else name
        values[name] = _convert(value, hints[name], key)
    default = cls()
    for name in names - set(values):
        values[name] = getattr(default, name)
    return cls(**values)


def load_config(preset_or_path: Optional[str] = None,
                overrides: Sequence[str] = ()) -> ExperimentConfig:
    """A preset name (see ``model/configs``) or YAML path, then overrides in order."""
    data = _read_yaml(preset_or_path) if preset_or_path else {}
    for override in overrides:
        _apply_override(data, override)
    return _build(ExperimentConfig, data, "")


def loads_config(text: str, source: str = "config") -> ExperimentConfig:
    """The config a YAML text (as written by ``to_yaml``) describes; ``source`` names
    the text in a ConfigError."""
    data = parse_yaml(text, source) or {}
    if not isinstance(data, dict):
        raise ConfigError("a config must hold a mapping at the top level")
    return _build(ExperimentConfig, data, "")


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def to_yaml(config: ExperimentConfig) -> str:
    """The fully resolved config as YAML; ``load_config`` of it gives an equal config."""
    return yaml.safe_dump(_plain(dataclasses.asdict(config)), sort_keys=False)

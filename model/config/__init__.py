"""Typed experiment configuration: dataclasses, YAML presets, ``key.sub=value`` overrides."""
from model.config.loader import ConfigError, load_config, loads_config, to_yaml  # noqa: F401
from model.config.schema import ExperimentConfig  # noqa: F401

"""Typed experiment configuration: dataclasses, YAML presets, ``key.sub=value`` overrides."""
from model.config.loader import (ConfigError, MODEL_DIR_CONFIG_FILE, load_config,  # noqa: F401
                                 loads_config, to_yaml)
from model.config.schema import ExperimentConfig  # noqa: F401

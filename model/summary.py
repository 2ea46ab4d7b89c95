"""Prints the parameters of each part of a configured model.

  python -m model.summary --config PRESET_OR_YAML [--override k=v ...]
      [--num_classes N] [--num_attributes A]

The last line is ``total_params=<int>``.
"""
import argparse
from typing import Optional, Sequence

import numpy as np

from model.config import ConfigError, load_config
from model.modeling.factory import build_parts, build_variables


def count_parameters(layer) -> int:
    return int(sum(np.prod(v.shape) for v in layer.trainable_variables))


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", required=True, help="preset name or YAML path")
    parser.add_argument("--override", action="append", default=[], help="key.sub=value")
    parser.add_argument("--num_classes", type=int, help="classes incl. background")
    parser.add_argument("--num_attributes", type=int)
    args = parser.parse_args(argv)
    overrides = list(args.override)
    if args.num_classes is not None:
        overrides.append(f"model.num_classes={args.num_classes}")
    if args.num_attributes is not None:
        overrides.append(f"model.num_attributes={args.num_attributes}")
    try:
        model_config = load_config(args.config, overrides).model
    except ConfigError as error:
        parser.exit(2, f"error: {error}\n")
    parts = build_parts(model_config)
    build_variables(parts, model_config)
    total = 0
    for name, part in parts.items():
        count = count_parameters(part)
        total += count
        print(f"{name:16s} {count:>12,d}")
    print(f"total_params={total}")
    return total


if __name__ == "__main__":
    main()

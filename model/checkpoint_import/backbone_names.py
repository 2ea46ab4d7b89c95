"""Backbone and FPN variable names: tensorflow/tpu's detection code (and the iMaterialist
fork of it, whose backbone code is the same) -> this package's model.

The reference builds its layers with ``tf.compat.v1.layers`` and no names, so a variable's
name only says in which variable scope it was made and how many layers of its kind were
made there before it: ``resnet50/conv2d_17/kernel`` is the 18th convolution made in the
``resnet50`` scope, ``spinenet/sub_policy3/scale_permuted_block_5/batch_normalization_2/gamma``
the third batch norm of SpineNet's fourth block. Convolutions and batch norms are counted
separately. This module writes down, for each reference scope, the reference's creation
order of its layers as our layers' names, numbers them as tf.layers does, and pairs the
variables. Nothing is guessed from shapes: the shapes only check the pairing, and a pair
whose shapes differ is reported as unmatched on both sides (never mapped).

Creation orders (tensorflow/tpu modeling/architecture):
- ResNet (scope ``resnet{depth}``): stem conv, stem BN, then per block: projection conv and
  BN (first block of a stage), then the block's convs, each followed by its BN.
- SpineNet (scope ``spinenet``): stem conv and BN, the two level-2 stem groups (units as in
  ResNet), the endpoint conv + BN of each level min..max; each block i opens
  ``sub_policy{i}`` with ``resample_with_alpha_resample_{i}_{0,1}`` (1x1 conv + BN, the
  stride-2 conv + BN when going down, the 1x1 conv + BN to the block's width) and
  ``scale_permuted_block_{i + 2}`` (its units).
- FPN (scope ``fpn``, named layers): ``l{L}`` lateral, ``post_hoc_d{L}`` output convs,
  ``p{L}`` extra-level convs, ``p{L}-bn`` output batch norms.
"""
import re
from typing import Dict, List, Mapping, Sequence, Tuple

from model.config.schema import ModelConfig

Shape = Tuple[int, ...]

_BN_VARIABLES = ("gamma", "beta", "moving_mean", "moving_variance")
_REFERENCE_SCOPES = re.compile(r"^(resnet\d+|spinenet|fpn)/")
_OUR_SCOPES = re.compile(r"^(backbone|fpn)/")


class _Scope:
    """The layers one reference variable scope makes, in creation order, as
    (kind, our layer path) with kind "conv" or "bn"."""

    def __init__(self, name: str):
        self.name = name
        self.layers: List[Tuple[str, str]] = []

    def conv(self, ours: str) -> "_Scope":
        self.layers.append(("conv", ours))
        return self

    def bn(self, ours: str) -> "_Scope":
        self.layers.append(("bn", ours))
        return self

    def pairs(self) -> List[Tuple[str, str]]:
        """(our variable name, reference variable name) for every variable of the scope."""
        counts = {"conv": 0, "bn": 0}
        result = []
        for kind, ours in self.layers:
            index = counts[kind]
            counts[kind] += 1
            base = "conv2d" if kind == "conv" else "batch_normalization"
            reference = f"{self.name}/{base}" + (f"_{index}" if index else "")
            if kind == "conv":
                result.append((f"{ours}/kernel", f"{reference}/kernel"))
            else:
                result.extend((f"{ours}/{variable}", f"{reference}/{variable}")
                              for variable in _BN_VARIABLES)
        return result


def _unit(scope: _Scope, ours: str, kind: str, project: bool) -> None:
    """One residual unit (ResNet block or SpineNet unit): kind "bottleneck" or "basic"."""
    if project:
        scope.conv(f"{ours}/shortcut").bn(f"{ours}/shortcut_bn")
    for index in range(3 if kind == "bottleneck" else 2):
        scope.conv(f"{ours}/conv{index}").bn(f"{ours}/bn{index}")


def _resnet_pairs(config: ModelConfig) -> List[Tuple[str, str]]:
    from model.modeling.resnet import _SPECS
    backbone = config.backbone
    if backbone.depth not in _SPECS or _SPECS[backbone.depth][0] != "bottleneck":
        raise ValueError("reference ResNets map for bottleneck depths (50, 101); got depth "
                         f"{backbone.depth} (the reference also projects the first basic block)")
    if backbone.width_multiplier != 1.0:
        raise ValueError("reference ResNets have width_multiplier 1")
    kind, repeats = _SPECS[backbone.depth]
    scope = _Scope(f"resnet{backbone.depth}").conv("backbone/stem_conv").bn("backbone/stem_bn")
    for stage, blocks in enumerate(repeats):
        for block in range(blocks):
            _unit(scope, f"backbone/stage{stage + 2}_block{block}", kind, project=block == 0)
    return scope.pairs()


def _spinenet_pairs(config: ModelConfig) -> List[Tuple[str, str]]:
    from model.modeling.spinenet import SpineNet
    settings = config.backbone.spinenet
    network = SpineNet(settings.model_id, config.norm, settings.activation, 0.0,
                       config.fpn.min_level, config.fpn.max_level)
    kinds = {"bottleneck": "bottleneck", "residual": "basic"}
    root = _Scope("spinenet").conv("backbone/stem_conv").bn("backbone/stem_bn")
    scopes = [root]
    for group in network._stem_groups:
        for unit in group:
            _unit(root, f"backbone/{unit.name}", "bottleneck", unit._shortcut is not None)
    for index, ((_, _, spec), pair, group) in enumerate(zip(network._wiring, network._resamples,
                                                            network._block_groups)):
        for slot, resample in enumerate(pair):
            ours = f"backbone/{resample.name}"
            scope = _Scope(f"spinenet/sub_policy{index}/"
                           f"resample_with_alpha_resample_{index}_{slot}")
            scope.conv(f"{ours}/reduce").bn(f"{ours}/reduce_bn")
            if resample._down is not None:
                scope.conv(f"{ours}/down").bn(f"{ours}/down_bn")
            scope.conv(f"{ours}/expand").bn(f"{ours}/expand_bn")
            scopes.append(scope)
        scope = _Scope(f"spinenet/sub_policy{index}/scale_permuted_block_{index + 2}")
        for unit in group:
            _unit(scope, f"backbone/{unit.name}", kinds[spec.kind], unit._shortcut is not None)
        scopes.append(scope)
    for level in range(config.fpn.min_level, config.fpn.max_level + 1):
        root.conv(f"backbone/endpoint{level}").bn(f"backbone/endpoint{level}_bn")
    return [pair for scope in scopes for pair in scope.pairs()]


def _fpn_pairs(config: ModelConfig) -> List[Tuple[str, str]]:
    fpn = config.fpn
    top = min(fpn.max_level, 5)
    pairs = []
    for level in range(fpn.min_level, top + 1):
        for variable in ("kernel", "bias"):
            pairs.append((f"fpn/lateral_p{level}/{variable}", f"fpn/l{level}/{variable}"))
            pairs.append((f"fpn/output_p{level}/{variable}", f"fpn/post_hoc_d{level}/{variable}"))
    for level in range(top + 1, fpn.max_level + 1):
        for variable in ("kernel", "bias"):
            pairs.append((f"fpn/extra_p{level}/{variable}", f"fpn/p{level}/{variable}"))
    for level in range(fpn.min_level, fpn.max_level + 1):
        pairs.extend((f"fpn/bn_p{level}/{variable}", f"fpn/p{level}-bn/{variable}")
                     for variable in _BN_VARIABLES)
    return pairs


def expected_pairs(config: ModelConfig) -> List[Tuple[str, str]]:
    """(our name, reference name) of every backbone and multilevel-feature variable the
    reference makes for ``config``'s architecture, in the reference's creation order."""
    if config.backbone.type == "resnet":
        pairs = _resnet_pairs(config)
    elif config.backbone.type == "spinenet":
        pairs = _spinenet_pairs(config)
    else:
        raise ValueError(f"no reference layout for backbone type {config.backbone.type!r}")
    if config.fpn.type == "fpn":
        pairs += _fpn_pairs(config)
    elif config.fpn.type != "identity":
        raise ValueError(f"no reference layout for fpn type {config.fpn.type!r}")
    return pairs


def map_backbone(reference: Mapping[str, Shape], ours: Sequence[Tuple[str, Shape]],
                 config: ModelConfig) -> Tuple[Dict[str, str], List[str], List[str]]:
    """({our name: reference name}, our unmatched names, reference unmatched names) for the
    backbone and multilevel-feature variables: reference names under ``resnet{N}/``,
    ``spinenet/`` or ``fpn/``, our names under ``backbone/`` or ``fpn/``; other names are
    other stages' and are ignored. A pair is mapped only when both names exist and their
    shapes agree; otherwise both names stay unmatched."""
    reference_shapes = {name: tuple(int(side) for side in shape)
                        for name, shape in reference.items() if _REFERENCE_SCOPES.match(name)}
    our_shapes = {name: tuple(int(side) for side in shape)
                  for name, shape in ours if _OUR_SCOPES.match(name)}
    mapping = {}
    for our_name, reference_name in expected_pairs(config):
        if (our_name in our_shapes and reference_name in reference_shapes
                and our_shapes[our_name] == reference_shapes[reference_name]
                and our_name not in mapping):
            mapping[our_name] = reference_name
    used = set(mapping.values())
    return (mapping, sorted(name for name in our_shapes if name not in mapping),
            sorted(name for name in reference_shapes if name not in used))

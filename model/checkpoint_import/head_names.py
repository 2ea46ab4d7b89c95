"""Reference -> our variable names for the RPN, box, mask and attribute heads.

Both reference families build these heads with ``tf.layers`` under fixed variable
scopes (tensorflow/tpu's Fashionpedia model and the iMaterialist fork alike):

  rpn_head/rpn, rpn-1, ...            the shared 3x3 convs (kernel, bias)
  rpn_head/rpn-l{L}-bn[-{i}]          batch norm of conv i at level L (not shared)
  rpn_head/rpn-class, rpn-box         objectness and box-delta 1x1 convs
  fast_rcnn_head/conv_{i}, fc{6+i}    convs and fcs, each followed by a batch norm
  fast_rcnn_head/class-predict, box-predict, attribute-predict (tensorflow/tpu only)
  mask_head/mask-conv-l{i}, conv5-mask (the deconv), mask_fcn_logits
  attributes_head/conv_{i}, fc{6+i}, attributes-predict (the fork, on mask RoIs)

The batch norms of fast_rcnn_head, mask_head and attributes_head are unnamed
(``batch_normalization``, ``batch_normalization_1``, ...), numbered in creation
order within the scope: convs first, then the fcs (box, attribute heads) or the
deconv (mask head). Ours come from ``model.modeling.heads`` (``rpn_head/conv{i}``,
``rpn_head/bn_p{L}_{i}``, ``box_head/box_conv{i}``, ``box_head/box_bn{i}``,
``box_head/fc{i}``, ``box_head/fc_bn{i}``, ``mask_head/deconv_bn`` ...).

Every pair is checked by shape; anything left over is reported, never guessed.
"""
import re
from typing import Dict, List, Optional, Sequence, Tuple

from model.config.schema import ModelConfig

Shape = Tuple[int, ...]

# The heads' variable scopes: the references', and our model's layer names.
REFERENCE_SCOPES = ("rpn_head", "fast_rcnn_head", "mask_head", "attributes_head")
OUR_SCOPES = ("rpn_head", "box_head", "mask_head", "attribute_head")
_BN_PARAMETERS = ("gamma", "beta", "moving_mean", "moving_variance")


def is_head_variable(name: str, scopes: Sequence[str]) -> bool:
    """Whether ``name`` lies in one of the head ``scopes`` (REFERENCE_SCOPES or OUR_SCOPES)."""
    return _split(name, scopes) is not None


def _split(name: str, scopes: Sequence[str]) -> Optional[Tuple[str, str]]:
    """'a/b/mask_head/x/kernel:0' -> ('mask_head', 'x/kernel') for the first scope found."""
    parts = name.split(":")[0].split("/")
    for index, part in enumerate(parts):
        if part in scopes:
            return part, "/".join(parts[index + 1:])
    return None


def _unnamed_batch_norms(names: Sequence[str]) -> List[str]:
    """Layer names 'batch_normalization[_N]' in a scope, in creation (N) order."""
    found = set()
    for name in names:
        layer = name.split("/")[0]
        match = re.fullmatch(r"batch_normalization(?:_(\d+))?", layer)
        if match:
            found.add((int(match.group(1) or 0), layer))
    return [layer for _, layer in sorted(found)]


def _weights(keeps_bias: bool, use_bn: bool) -> Tuple[str, ...]:
    """A conv's or fc's variables: no bias when a batch norm follows it, unless kept."""
    return ("kernel", "bias") if keeps_bias or not use_bn else ("kernel",)


def _normalised_stack(scope: str, layers, batch_norms: Sequence[str]
                      ) -> List[Tuple[str, str, Tuple[str, ...]]]:
    """Pairs for ``layers`` [(our layer, our batch norm or None, reference layer, weights)]
    in creation order; the reference's unnamed batch norms of ``scope`` (``batch_norms``,
    in creation order) go, one each, to the layers with a batch norm."""
    pairs, next_norm = [], 0
    for ours, our_norm, theirs, weights in layers:
        pairs.append((ours, f"{scope}/{theirs}", weights))
        if our_norm is not None and next_norm < len(batch_norms):
            pairs.append((our_norm, f"{scope}/{batch_norms[next_norm]}", _BN_PARAMETERS))
            next_norm += 1
    return pairs


def _layer_pairs(config: ModelConfig, reference_layers: Dict[str, List[str]]
                 ) -> List[Tuple[str, str, Tuple[str, ...]]]:
    """(our scope/layer, reference scope/layer, parameter names) for every head layer."""
    conv = ("kernel", "bias")
    pairs = []
    levels = range(config.fpn.min_level, config.fpn.max_level + 1)
    rpn = config.rpn
    # The fork's RPN head builds one conv whatever num_convs says; ours follows num_convs.
    for i in range(rpn.num_convs):
        pairs.append((f"rpn_head/conv{i}", "rpn_head/rpn" + (f"-{i}" if i else ""),
                      _weights(rpn.conv_bias_with_bn, rpn.use_bn)))
        if rpn.use_bn:
            for level in levels:
                pairs.append((f"rpn_head/bn_p{level}_{i}",
                              f"rpn_head/rpn-l{level}-bn" + (f"-{i}" if i else ""), _BN_PARAMETERS))
    pairs.append(("rpn_head/scores", "rpn_head/rpn-class", conv))
    pairs.append(("rpn_head/boxes", "rpn_head/rpn-box", conv))

    box = config.box_head
    box_weights = _weights(box.conv_bias_with_bn, box.use_bn)
    pairs += _normalised_stack("fast_rcnn_head", [
        *[(f"box_head/box_conv{i}", f"box_head/box_bn{i}" if box.use_bn else None, f"conv_{i}",
           box_weights) for i in range(box.num_convs)],
        *[(f"box_head/fc{i}", f"box_head/fc_bn{i}" if box.use_bn else None, f"fc{6 + i}",
           box_weights) for i in range(box.num_fcs)]], reference_layers.get("fast_rcnn_head", []))
    pairs.append(("box_head/class_logits", "fast_rcnn_head/class-predict", conv))
    pairs.append(("box_head/box_deltas", "fast_rcnn_head/box-predict", conv))

    mask = config.mask_head
    deconv_bn = mask.use_bn and mask.deconv_bn
    pairs += _normalised_stack("mask_head", [
        *[(f"mask_head/mask_conv{i}", f"mask_head/mask_bn{i}" if mask.use_bn else None,
           f"mask-conv-l{i}", _weights(mask.conv_bias_with_bn, mask.use_bn))
          for i in range(mask.num_convs)],
        ("mask_head/deconv", "mask_head/deconv_bn" if deconv_bn else None, "conv5-mask",
         _weights(mask.conv_bias_with_bn, deconv_bn))], reference_layers.get("mask_head", []))
    pairs.append(("mask_head/mask_logits", "mask_head/mask_fcn_logits", conv))

    attribute = config.attribute_head
    if attribute.enabled and config.num_attributes > 0:
        if attribute.placement == "box_features":
            pairs.append(("box_head/attribute_logits", "fast_rcnn_head/attribute-predict", conv))
        else:
            weights = _weights(attribute.conv_bias_with_bn, attribute.use_bn)
            normalised = attribute.use_bn
            pairs += _normalised_stack("attributes_head", [
                *[(f"attribute_head/attribute_conv{i}",
                   f"attribute_head/attribute_bn{i}" if normalised else None, f"conv_{i}", weights)
                  for i in range(attribute.num_convs)],
                ("attribute_head/fc", "attribute_head/fc_bn" if normalised else None, "fc6",
                 weights)], reference_layers.get("attributes_head", []))
            pairs.append(("attribute_head/attribute_logits", "attributes_head/attributes-predict",
                          conv))
    return pairs


def map_heads(reference: Dict[str, Shape], ours: Sequence[Tuple[str, Shape]],
              config: ModelConfig) -> Tuple[Dict[str, str], List[str], List[str]]:
    """({our name: reference name}, our names left unmatched, reference names left unmatched)
    for the head variables. ``reference``: {name: shape} of the reference checkpoint's head
    variables (others are returned unmatched); ``ours``: (name, shape) of our variables,
    as ``below_model_scope`` gives them (other stages' variables are ignored)."""
    reference_by_key: Dict[str, str] = {}
    layers: Dict[str, List[str]] = {}
    for name in reference:
        found = _split(name, REFERENCE_SCOPES)
        if found:
            reference_by_key[f"{found[0]}/{found[1]}"] = name
            layers.setdefault(found[0], []).append(found[1])
    layers = {scope: _unnamed_batch_norms(names) for scope, names in layers.items()}

    our_by_key: Dict[str, Tuple[str, Shape]] = {}
    for name, shape in ours:
        found = _split(name, OUR_SCOPES)
        if found:
            our_by_key[f"{found[0]}/{found[1]}"] = (name, tuple(shape))

    mapping: Dict[str, str] = {}
    for our_layer, reference_layer, parameters in _layer_pairs(config, layers):
        for parameter in parameters:
            our = our_by_key.get(f"{our_layer}/{parameter}")
            reference_name = reference_by_key.get(f"{reference_layer}/{parameter}")
            if our is None or reference_name is None:
                continue
            if tuple(reference[reference_name]) != our[1]:
                continue  # reported below as unmatched on both sides
            mapping[our[0]] = reference_name
    used = set(mapping.values())
    unmatched_ours = [name for name, _ in our_by_key.values() if name not in mapping]
    unmatched_reference = [name for name in reference if name not in used]
    return mapping, unmatched_ours, unmatched_reference

"""Variable names that survive Keras' uniquified model scopes.

A model built twice in one process is scoped ``attribute_mask_rcnn`` then
``attribute_mask_rcnn_1``; checkpoints written by the training job (graph mode)
and models built for export therefore agree on names only below that first
component, e.g. ``backbone/stem_conv/kernel``.
"""


def below_model_scope(name: str) -> str:
    """``attribute_mask_rcnn_1/backbone/conv/kernel:0`` -> ``backbone/conv/kernel``."""
    return name.split(":")[0].split("/", 1)[-1]

"""The experiment configuration, as typed dataclasses with the defaults of the
Fashionpedia Mask R-CNN recipes. Presets (``model/configs/*.yaml``) override them.

Units: sizes in pixels, IoU thresholds in [0, 1], learning rates per step.
"""
import dataclasses
from typing import Tuple


@dataclasses.dataclass
class SpineNetConfig:
    model_id: str = "49"  # "49S", "49", "96" or "143" (scaling of the SpineNet-49 specification)
    activation: str = "relu"  # "relu" or "swish"
    stochastic_depth_rate: float = 0.0  # drop rate of the last block's residual branch (training)
    # Stride-2 convs (stem, resampling): "same" (TF SAME padding) or "fixed" (pad (k-1)//2
    # before, the rest after, then VALID: tensorflow/tpu's SpineNet).
    strided_conv_padding: str = "same"
    # Going down 3+ levels: "chained" 3x3/2 max pools, or "single": one max pool of stride
    # 2**(change-1), size 3 (change 2) or 5 (tensorflow/tpu's SpineNet).
    resample_pooling: str = "chained"


@dataclasses.dataclass
class BackboneConfig:
    type: str = "resnet"  # "resnet" or "spinenet"
    depth: int = 50  # ResNet: 18, 34, 50 or 101
    width_multiplier: float = 1.0  # ResNet: scales every stage's filters (small models)
    freeze_bn: bool = False  # ResNet
    # ResNet stem max pool: "pad1" (one zero row/column each side, VALID) or "same"
    # (TF SAME padding: tensorflow/tpu's ResNet).
    stem_pool_padding: str = "pad1"
    spinenet: SpineNetConfig = dataclasses.field(default_factory=SpineNetConfig)


@dataclasses.dataclass
class NormConfig:
    """Batch normalisation of the backbone and of the heads that use it."""
    use_sync_bn: bool = False  # statistics over all TPU cores (cross-replica mean)
    momentum: float = 0.997
    epsilon: float = 1e-4


@dataclasses.dataclass
class FpnConfig:
    # "fpn": top-down feature pyramid on the backbone's levels 2..5; "identity": the
    # backbone already gives min_level..max_level with num_filters channels (SpineNet).
    type: str = "fpn"
    min_level: int = 2
    max_level: int = 6
    num_filters: int = 256
    # Levels above the backbone's (fpn type): "max_pool" (1x1/2 subsampling of the level
    # below) or "conv" (3x3/2 conv with bias of the level below, ReLU first from the second
    # such level: tensorflow/tpu's P6/P7).
    extra_levels: str = "max_pool"
    use_bn: bool = False  # fpn type: batch norm without activation on every output level


@dataclasses.dataclass
class AnchorConfig:
    num_scales: int = 1
    aspect_ratios: Tuple[float, ...] = (0.5, 1.0, 2.0)
    anchor_size: float = 8.0  # anchor side at each level = anchor_size * 2**level


@dataclasses.dataclass
class RpnConfig:
    num_convs: int = 1
    num_filters: int = 256
    use_bn: bool = False
    foreground_iou: float = 0.7
    background_iou: float = 0.3
    samples_per_image: int = 256
    foreground_fraction: float = 0.5
    train_pre_nms_top_k: int = 2000
    train_post_nms_top_k: int = 2000
    test_pre_nms_top_k: int = 1000
    test_post_nms_top_k: int = 1000
    nms_iou: float = 0.7
    min_box_size: float = 0.0
    # Reference-compatibility switches (defaults: this package's own behaviour).
    conv_bias_with_bn: bool = False  # True: the 3x3 convs keep their bias before batch norm
    activation: str = "relu"  # "relu" or "swish" after each 3x3 conv (and its batch norm)
    # "default": top-k on logits, NMS keeps up to pre_nms_top_k per level;
    # "tpu": tensorflow/tpu's multilevel_propose_rois (sigmoid, then top-k, NMS that
    # never keeps boxes with no positive coordinate, per level at most post_nms_top_k).
    proposal_style: str = "default"


@dataclasses.dataclass
class RoiSamplerConfig:
    samples_per_image: int = 512
    foreground_fraction: float = 0.25
    foreground_iou: float = 0.5
    background_iou_high: float = 0.5
    background_iou_low: float = 0.0


@dataclasses.dataclass
class BoxHeadConfig:
    num_convs: int = 0
    conv_filters: int = 256
    num_fcs: int = 2
    fc_dims: int = 1024
    use_bn: bool = False
    roi_size: int = 7
    conv_bias_with_bn: bool = False  # True: convs and fcs keep their bias before batch norm
    activation: str = "relu"  # "relu" or "swish"


@dataclasses.dataclass
class MaskHeadConfig:
    num_convs: int = 4
    num_filters: int = 256
    use_bn: bool = False
    roi_size: int = 14
    mask_size: int = 28
    samples_per_image: int = 128
    conv_bias_with_bn: bool = False  # True: convs and the deconv keep their bias before batch norm
    deconv_bn: bool = False  # True: batch norm (with use_bn) + activation after the deconv
    activation: str = "relu"  # "relu" or "swish"


@dataclasses.dataclass
class AttributeHeadConfig:
    enabled: bool = True
    num_convs: int = 4
    num_filters: int = 256
    fc_dims: int = 1024
    use_bn: bool = False
    loss: str = "sigmoid"  # "sigmoid" or "focal"
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    loss_weight: float = 1.0
    # "mask_rois": its own convs + fc on the mask head's RoI features (this package, and the
    # iMaterialist fork); "box_features": one dense layer on the box head's last fc
    # (tensorflow/tpu's Fashionpedia model; num_convs, num_filters, fc_dims, use_bn unused;
    # trained on every sampled RoI, background ones with all-zero targets).
    placement: str = "mask_rois"
    conv_bias_with_bn: bool = False  # True: convs and fc keep their bias before batch norm
    activation: str = "relu"  # "relu" or "swish"


@dataclasses.dataclass
class RoiAlignConfig:
    # "aligned": sampling_ratio^2 samples per bin with the half-pixel offset, zero outside
    # (this package); "tpu": tensorflow/tpu's multilevel_crop_and_resize (one bilinear
    # sample at each bin centre, no half-pixel offset, corners clamped to the map).
    type: str = "aligned"


@dataclasses.dataclass
class PostprocessConfig:
    pre_nms_top_k: int = 1000
    score_threshold: float = 0.05
    nms_iou: float = 0.5
    max_detections: int = 100
    # "continuous": sizes ymax - ymin, boxes clipped to [0, size]; "pixel_plus_one":
    # tensorflow/tpu's box_utils (sizes ymax - ymin + 1, clipped to [0, size - 1]). Used by
    # proposals, detections and the box head's training targets (the RPN's targets stay
    # "continuous", as tensorflow/tpu's anchor labeler encodes them).
    box_coding: str = "continuous"


@dataclasses.dataclass
class PreprocessingConfig:
    """How an image becomes the model's input; training, evaluation and serving share it."""
    # True: TensorFlow 2's bilinear resize (half-pixel centres); False: the TF1 resize
    # (tf.compat.v1.image.resize_images) of tensorflow/tpu's parsers.
    resize_half_pixel_centers: bool = True
    # False: the padding is black before normalising; True: it is 0 after normalising (the
    # ImageNet mean colour), as tensorflow/tpu's parsers pad.
    pad_with_mean: bool = False
    # False: proposals and detections are clipped to the scaled image inside the padded
    # input; True: to the whole padded input, as tensorflow/tpu's models clip.
    clip_boxes_to_input: bool = False


@dataclasses.dataclass
class ModelConfig:
    num_classes: int = 47  # including background
    num_attributes: int = 341
    backbone: BackboneConfig = dataclasses.field(default_factory=BackboneConfig)
    norm: NormConfig = dataclasses.field(default_factory=NormConfig)
    fpn: FpnConfig = dataclasses.field(default_factory=FpnConfig)
    anchor: AnchorConfig = dataclasses.field(default_factory=AnchorConfig)
    rpn: RpnConfig = dataclasses.field(default_factory=RpnConfig)
    roi_sampler: RoiSamplerConfig = dataclasses.field(default_factory=RoiSamplerConfig)
    box_head: BoxHeadConfig = dataclasses.field(default_factory=BoxHeadConfig)
    mask_head: MaskHeadConfig = dataclasses.field(default_factory=MaskHeadConfig)
    attribute_head: AttributeHeadConfig = dataclasses.field(default_factory=AttributeHeadConfig)
    postprocess: PostprocessConfig = dataclasses.field(default_factory=PostprocessConfig)
    roi_align: RoiAlignConfig = dataclasses.field(default_factory=RoiAlignConfig)
    preprocessing: PreprocessingConfig = dataclasses.field(default_factory=PreprocessingConfig)
    l2_weight_decay: float = 4e-5
    bfloat16: bool = False
    # True: RoIAlign by gathers and padded NMS, which TPUs run; False: TensorFlow's
    # crop_and_resize and combined NMS kernels, much faster on CPUs and GPUs.
    static_ops_for_tpu: bool = False


@dataclasses.dataclass
class InputConfig:
    image_size: int = 1024
    aug_rand_hflip: bool = True
    aug_scale_min: float = 0.5
    aug_scale_max: float = 2.0
    max_num_instances: int = 100
    mask_crop_size: int = 112
    shuffle_buffer: int = 1024
    autoaugment_policy: str = "none"  # "none" or "v3" (detection AutoAugment, masks kept aligned)
    apply_autoaugment_after_resizing: bool = True  # False: on the original image, before the flip


@dataclasses.dataclass
class TrainConfig:
    batch_size: int = 64
    total_steps: int = 90000
    learning_rate: float = 0.08
    warmup_steps: int = 500
    warmup_learning_rate: float = 0.0067
    decay_steps: Tuple[int, ...] = (60000, 80000)
    decay_factor: float = 0.1
    momentum: float = 0.9
    gradient_clip_norm: float = 0.0  # 0: no clipping


@dataclasses.dataclass
class EvalConfig:
    batch_size: int = 8
    num_images: int = 0  # 0: the whole eval set


@dataclasses.dataclass
class ExperimentConfig:
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    input: InputConfig = dataclasses.field(default_factory=InputConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    eval: EvalConfig = dataclasses.field(default_factory=EvalConfig)

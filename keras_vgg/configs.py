"""The paper's Table 1 as data: every configuration is a value, never code.

A configuration lists, per stage, the kernel size of each convolution; the builder in
`keras_vgg.models` reads it. Variants (batch norm, the 5x5 control network) are derived
from the table's columns by functions, not written out again.
"""

from __future__ import annotations

import dataclasses

# Table 1: filters per stage (each stage ends in a 2x2/2 max-pool).
STAGE_WIDTHS = (64, 128, 256, 512, 512)
# Table 1: the two hidden fully-connected layers (FC-4096, FC-4096).
FC_UNITS = (4096, 4096)
# Sect. 2.1: the default training crop, height and width in pixels.
DEFAULT_INPUT_SIZE = 224
# Five 2x2 max-pools halve the input five times: 32 px is the smallest valid input.
MIN_INPUT_SIZE = 32
# Sect. 3.2: multi-crop evaluation takes a 5x5 grid of crops (and their flips) per scale.
MULTI_CROP_GRID = 5
# Sect. 4.2: the multi-scale test scales Q of the nets trained with S in [256, 512].
MULTI_SCALE_TEST_SCALES = (256, 384, 512)
# keras.applications' names of the head's layers, which weight files, dense evaluation,
# descriptors, localisation and serving address.
FLATTEN_LAYER = "flatten"
FC_LAYERS = ("fc1", "fc2")
PREDICTIONS_LAYER = "predictions"
HEAD_LAYERS = (*FC_LAYERS, PREDICTIONS_LAYER)  # the Dense layers, in order


def conv_layer(stage: int, index: int) -> str:
    """keras.applications' name of a stage's conv layer, both counted from 1."""
    return f"block{stage}_conv{index}"


def pool_layer(stage: int) -> str:
    """keras.applications' name of the max-pool ending a stage (counted from 1)."""
    return f"block{stage}_pool"


@dataclasses.dataclass(frozen=True)
class VGGConfig:
    """One network: a column of Table 1 or a variant derived from one.

    Attributes:
      name: the paper's letter ("A", "A-LRN", ...) or a variant name ("D-BN", "B-5x5").
      model_name: the default Keras model name (keras.applications / torchvision style).
      kernel_sizes: per stage, the kernel size of each conv in order (3, 1 in C, 5 in the
        control network).
      widths: filters of every conv in a stage, one entry per stage.
      fc_units: units of the hidden fully-connected layers (fc1, fc2).
      lrn: local response normalisation after the first conv (config A-LRN).
      batch_norm: conv -> BatchNorm -> ReLU, as torchvision's `vgg*_bn`.
    """

    name: str
    model_name: str
    kernel_sizes: tuple[tuple[int, ...], ...]
    widths: tuple[int, ...] = STAGE_WIDTHS
    fc_units: tuple[int, ...] = FC_UNITS
    lrn: bool = False
    batch_norm: bool = False

    def __post_init__(self):
        if len(self.kernel_sizes) != len(self.widths):
            raise ValueError(
                f"config {self.name!r}: {len(self.kernel_sizes)} stages of kernels but "
                f"{len(self.widths)} stage widths"
            )

    @property
    def num_convs(self) -> int:
        return sum(len(stage) for stage in self.kernel_sizes)

    @property
    def weight_layers(self) -> int:
        """Convs plus fully-connected layers (fc1, fc2, predictions): Table 1's depth."""
        return self.num_convs + len(self.fc_units) + 1


def scaled_width(units: int, width_multiplier: float) -> int:
    """Filters or units after `width_multiplier`; at least 1."""
    return max(1, int(round(units * width_multiplier)))


def _stages(*convs_per_stage: int, last_is_1x1: bool = False) -> tuple[tuple[int, ...], ...]:
    """Kernel sizes for `convs_per_stage` 3x3 convs; in C the third conv of stages 3-5 is 1x1."""
    stages = []
    for stage, count in enumerate(convs_per_stage, start=1):
        kernels = [3] * count
        if last_is_1x1 and stage >= 3:
            kernels[-1] = 1
        stages.append(tuple(kernels))
    return tuple(stages)


# Table 1 of the paper, column by column.
TABLE_1: dict[str, VGGConfig] = {
    config.name: config
    for config in (
        VGGConfig("A", "vgg11", _stages(1, 1, 2, 2, 2)),
        VGGConfig("A-LRN", "vgg11_lrn", _stages(1, 1, 2, 2, 2), lrn=True),
        VGGConfig("B", "vgg13", _stages(2, 2, 2, 2, 2)),
        VGGConfig("C", "vgg16_c", _stages(2, 2, 3, 3, 3, last_is_1x1=True)),
        VGGConfig("D", "vgg16", _stages(2, 2, 3, 3, 3)),
        VGGConfig("E", "vgg19", _stages(2, 2, 4, 4, 4)),
    )
}


def with_batch_norm(config: VGGConfig) -> VGGConfig:
    """The same network with BatchNorm between each conv and its ReLU (torchvision's `_bn`)."""
    if config.batch_norm:
        return config
    return dataclasses.replace(
        config,
        name=f"{config.name}-BN",
        model_name=f"{config.model_name}_bn",
        batch_norm=True,
    )


def with_pairs_as_5x5(config: VGGConfig) -> VGGConfig:
    """Sect. 4.1's control network: each pair of 3x3 convs becomes one 5x5 conv.

    Two stacked 3x3 convs see a 5x5 window, so the receptive field is unchanged while the
    depth halves. Only configurations whose stages are all pairs of 3x3 convs (B) qualify.
    """
    if any(stage != (3, 3) for stage in config.kernel_sizes):
        raise ValueError(
            f"config {config.name!r} has stages {config.kernel_sizes}; the 5x5 control "
            "network needs every stage to be a pair of 3x3 convs (config B)"
        )
    return dataclasses.replace(
        config,
        name=f"{config.name}-5x5",
        model_name=f"{config.model_name}_5x5",
        kernel_sizes=tuple((5,) for _ in config.kernel_sizes),
    )


VARIANTS: dict[str, VGGConfig] = {
    **{
        variant.name: variant
        for variant in (with_batch_norm(TABLE_1[letter]) for letter in ("A", "B", "D", "E"))
    },
    "B-5x5": with_pairs_as_5x5(TABLE_1["B"]),
}

CONFIGS: dict[str, VGGConfig] = {**TABLE_1, **VARIANTS}

# torchvision / timm model names, so `vgg("vgg16_bn")` means what those users expect.
ALIASES: dict[str, str] = {
    config.model_name: config.name
    for config in CONFIGS.values()
}


def get(config: str | VGGConfig) -> VGGConfig:
    """Looks a configuration up by paper letter, variant or model name (case-insensitive).

    Examples: "D", "a-lrn", "E-BN", "B-5x5", "vgg16", "vgg19_bn".
    """
    if isinstance(config, VGGConfig):
        return config
    if not isinstance(config, str):
        raise TypeError(f"config must be a name or a VGGConfig, got {type(config).__name__}")
    key = config.strip()
    by_upper_name = {name.upper(): value for name, value in CONFIGS.items()}
    if key.upper() in by_upper_name:
        return by_upper_name[key.upper()]
    if key.lower() in ALIASES:
        return CONFIGS[ALIASES[key.lower()]]
    raise ValueError(
        f"unknown VGG config {config!r}; expected one of {sorted(CONFIGS)} "
        f"or a model name {sorted(ALIASES)}"
    )

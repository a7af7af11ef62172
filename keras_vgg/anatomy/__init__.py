"""Model anatomy: the paper's figures computed from the built Keras models, never typed in.

The command line (`python -m keras_vgg.anatomy`, in `__main__.py`) prints these as tables.

Every figure comes from walking a model's layers: shapes from each layer's
`compute_output_spec`, parameters from `count_params`, multiply-adds as kernel weights times
output positions, receptive fields from the kernels, strides and dilations of the layers.
Only weight layers (Conv2D, Dense) count multiply-adds; pooling, ReLU, LRN and BatchNorm
cost a few operations per activation and are left out, as in the usual GFLOPs figures.

A receptive field is the side of the input window that reaches one output position of a
layer: a pixel outside it leaves that output unchanged. `dense_costs` compares dense
evaluation at each test scale Q with the 50 crops multi-crop evaluation takes there (150
over the paper's three scales). `stack_comparison` sets a stack of n 3x3 convolutions
beside the single conv with the same receptive field (2n+1): three 3x3 layers see 7x7 with
27C^2 weights and three ReLUs, one 7x7 layer needs 49C^2 (1.81x) with one. For D the tables
show what the paper's argument rests on: the 13 convs hold 14,714,688 of the 138,357,544
parameters (10.6%) but 99.2% of the 15.47 G multiply-adds per 224 image, while fc1 alone
holds 102,764,544 (74.3%). The functions (`layer_rows`, `stage_rows`, `ladder`,
`stack_comparison`, `dense_costs`) return dataclasses.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Sequence

import keras

from keras_vgg import configs
from keras_vgg.configs import MULTI_CROP_GRID
from keras_vgg.dense import conv_name, fully_convolutional
from keras_vgg.models import channels_first, vgg

# Sect. 3.2: the image and its horizontal flip are evaluated, densely or by crops.
TEST_FLIPS = 2
# Sect. 3.2: 50 crops per test scale (a 5x5 grid, each flipped); 3 scales make 150.
CROPS_PER_SCALE = MULTI_CROP_GRID * MULTI_CROP_GRID * TEST_FLIPS
DEFAULT_TEST_SCALES = configs.MULTI_SCALE_TEST_SCALES
HEAD = "head"
_STAGE = re.compile(r"^(block\d+)_")


@dataclasses.dataclass(frozen=True)
class LayerRow:
    """One layer of a model as the anatomy sees it (one image, no batch axis).

    Attributes:
      name, kind: the Keras layer name and class name.
      stage: "block1" ... "block5", or "head" for flatten, the FC layers and what follows.
      output_shape: `(height, width, channels)` or `(units,)`.
      receptive_field: `(height, width)` in input pixels seen by one output unit.
      jump: `(height, width)` input pixels between neighbouring output units.
      params: weights and biases (BatchNorm statistics included).
      macs: multiply-adds per image (0 for layers without a kernel).
    """

    name: str
    kind: str
    stage: str
    output_shape: tuple[int, ...]
    receptive_field: tuple[int, int]
    jump: tuple[int, int]
    params: int
    macs: int

    @property
    def is_weight_layer(self) -> bool:
        return self.kind in ("Conv2D", "Dense")


def _window(layer: keras.layers.Layer, input_shape: tuple[int, ...]
            ) -> tuple[Sequence[int], Sequence[int], Sequence[int]] | None:
    """`(kernel, stride, dilation)`, each `(height, width)`, of a layer that looks at a
    window, or None. Flatten and global pooling look at the whole input map at once."""
    if isinstance(layer, keras.layers.Conv2D):
        return layer.kernel_size, layer.strides, layer.dilation_rate
    if isinstance(layer, (keras.layers.MaxPooling2D, keras.layers.AveragePooling2D)):
        return layer.pool_size, layer.strides, (1, 1)
    if isinstance(layer, (keras.layers.Flatten, keras.layers.GlobalAveragePooling2D,
                          keras.layers.GlobalMaxPooling2D)) and len(input_shape) == 3:
        return input_shape[:2], (1, 1), (1, 1)
    return None


def _macs(layer: keras.layers.Layer, output_shape: tuple[int, ...]) -> int:
    """Multiply-adds of one image: every kernel weight is used once per output position."""
    kernel = getattr(layer, "kernel", None)
    if kernel is None or not isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)):
        return 0
    return math.prod(kernel.shape) * math.prod(output_shape[:-1])


def _channels_first(model: keras.Model) -> bool:
    return any(getattr(layer, "data_format", None) == "channels_first" for layer in model.layers)


def _height_width_channels(shape: tuple, channels_first: bool) -> tuple:
    """A layer's per-image shape in `(height, width, channels)` order (units unchanged)."""
    return (*shape[1:], shape[0]) if channels_first and len(shape) == 3 else shape


def image_shape(model: keras.Model) -> tuple:
    """The model's input image as `(height, width, channels)`, whatever its layout."""
    return _height_width_channels(tuple(model.input_shape[1:]), _channels_first(model))


def layer_rows(model: keras.Model, *, input_size: int | tuple[int, int] | None = None
               ) -> list[LayerRow]:
    """The model's layers in order, for one `[height, width, channels]` image. Shapes are
    given `(height, width, channels)` also for a `channels_first` model.

    Args:
      model: a chain of layers, each taking the previous one's output (every keras_vgg
        model, and its `fully_convolutional` form).
      input_size: the image side (or `(height, width)`); required when the model's input
        has no static size, otherwise it must match it.

    Returns:
      One `LayerRow` per layer after the input.
    """
    first = _channels_first(model)

    def native(shape: tuple) -> tuple:
        return (shape[2], *shape[:2]) if first and len(shape) == 3 else shape

    shape = image_shape(model)
    if input_size is not None:
        height, width = (input_size, input_size) if isinstance(input_size, int) else input_size
        if shape[0] not in (None, height) or shape[1] not in (None, width):
            raise ValueError(
                f"model {model.name!r} takes {shape[:2]} images; input_size={input_size!r} "
                "does not fit")
        shape = (height, width, shape[2])
    if None in shape:
        raise ValueError(
            f"model {model.name!r} takes images of any size {shape}: pass input_size")
    receptive_field, jump = [1, 1], [1, 1]
    rows = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        window = _window(layer, shape)
        if window is not None:
            for axis, (kernel, stride, dilation) in enumerate(zip(*window, strict=True)):
                receptive_field[axis] += (kernel - 1) * dilation * jump[axis]
                jump[axis] *= stride
        output = layer.compute_output_spec(keras.KerasTensor((1, *native(shape))))
        output_shape = _height_width_channels(tuple(int(side) for side in output.shape[1:]),
                                              first)
        stage = _STAGE.match(layer.name)
        rows.append(LayerRow(
            name=layer.name,
            kind=type(layer).__name__,
            stage=stage.group(1) if stage else HEAD,
            output_shape=output_shape,
            receptive_field=tuple(receptive_field),
            jump=tuple(jump),
            params=layer.count_params() if layer.built else 0,
            macs=_macs(layer, output_shape),
        ))
        shape = output_shape
    return rows


@dataclasses.dataclass(frozen=True)
class StageRow:
    """Layers of one stage added up; `output_shape` is that of the stage's last layer."""

    stage: str
    weight_layers: int
    output_shape: tuple[int, ...]
    params: int
    macs: int


def stage_rows(rows: Sequence[LayerRow]) -> list[StageRow]:
    """`rows` grouped by stage, in order of appearance."""
    stages: dict[str, list[LayerRow]] = {}
    for row in rows:
        stages.setdefault(row.stage, []).append(row)
    return [
        StageRow(
            stage=stage,
            weight_layers=sum(row.is_weight_layer for row in members),
            output_shape=members[-1].output_shape,
            params=sum(row.params for row in members),
            macs=sum(row.macs for row in members),
        )
        for stage, members in stages.items()
    ]


def build(config: str | configs.VGGConfig, *, input_size: int = configs.DEFAULT_INPUT_SIZE
          ) -> keras.Model:
    """The full-size network with its head; zero weights (the anatomy needs no values)."""
    shape = (3, input_size, input_size) if channels_first() else (input_size, input_size, 3)
    return vgg(config, input_shape=shape, kernel_initializer="zeros")


# --- The arguments of the paper -------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class LadderRow:
    """One network of Table 2: weight layers, parameters, and multiply-adds per image at
    the crop size."""

    config: str
    weight_layers: int
    params: int
    macs: int


def ladder(names: Sequence[str] = (*configs.TABLE_1, "B-5x5"), *,
           input_size: int = configs.DEFAULT_INPUT_SIZE) -> list[LadderRow]:
    """Table 2 (parameters per network) and Table 1's depth, from built models."""
    result = []
    for name in names:
        rows = layer_rows(build(name, input_size=input_size))
        result.append(LadderRow(
            config=configs.get(name).name,
            weight_layers=sum(row.is_weight_layer for row in rows),
            params=sum(row.params for row in rows),
            macs=sum(row.macs for row in rows),
        ))
        keras.backend.clear_session()
    return result


@dataclasses.dataclass(frozen=True)
class StackRow:
    """n stacked 3x3 convs against the one k x k conv with the same receptive field, both
    C -> C channels without biases; weights are given in units of C^2, receptive fields and
    kernels in pixels, ReLUs as (stack, single conv)."""

    depth: int
    receptive_field: int
    stack_weights_per_c2: float
    single_kernel: int
    single_weights_per_c2: float
    relus: tuple[int, int]


def _conv_chain(kernel_sizes: Sequence[int], channels: int) -> keras.Model:
    """Convs of `kernel_sizes`, each C -> C channels with a ReLU and no bias, as in VGG."""
    layers = [keras.layers.Conv2D(channels, size, use_bias=False, activation="relu")
              for size in kernel_sizes]
    return keras.Sequential([keras.Input((None, None, channels)), *layers])


def _relus(model: keras.Model) -> int:
    return sum(getattr(layer, "activation", None) is keras.activations.relu
               for layer in model.layers)


def stack_comparison(max_depth: int = 3, *, channels: int = 8) -> list[StackRow]:
    """Sect. 2.3: a stack of n 3x3 convs sees (2n+1)^2 pixels with 9n C^2 weights and n
    ReLUs; the single conv of that receptive field has (2n+1)^2 C^2 weights and one ReLU.
    Both are built as Keras layers and measured with `layer_rows`."""
    result = []
    for depth in range(1, max_depth + 1):
        stack = _conv_chain([3] * depth, channels)
        # Any input at least as large as the receptive field gives a non-empty output.
        field = layer_rows(stack, input_size=2 * depth + 1)[-1].receptive_field[0]
        single = _conv_chain([field], channels)
        result.append(StackRow(
            depth=depth,
            receptive_field=field,
            stack_weights_per_c2=stack.count_params() / channels**2,
            single_kernel=single.layers[-1].kernel_size[0],
            single_weights_per_c2=single.count_params() / channels**2,
            relus=(_relus(stack), _relus(single)),
        ))
    return result


@dataclasses.dataclass(frozen=True)
class DenseCostRow:
    """One test scale Q: dense evaluation of a square Q x Q image (the paper rescales the
    shorter side to Q; a 4:3 image costs about 4/3 more) against multi-crop evaluation at Q.

    Attributes:
      test_scale: Q in pixels.
      score_map_side: the side of the class score map (floor(Q/32) - 6 for 224 crops).
      dense_macs: multiply-adds of one pass of the fully-convolutional net (flip: twice).
      multi_crop_macs: multiply-adds of the `CROPS_PER_SCALE` crops (flips included).
    """

    test_scale: int
    score_map_side: int
    dense_macs: int
    multi_crop_macs: int


def dense_costs(model: keras.Model, test_scales: Sequence[int] = DEFAULT_TEST_SCALES
                ) -> list[DenseCostRow]:
    """Score-map side and multiply-adds per image of the fully-convolutional net at each Q
    (Sect. 3.2), and of `CROPS_PER_SCALE` crops through `model` at its own input size."""
    crop_macs = sum(row.macs for row in layer_rows(model))
    crop = image_shape(model)[0]
    net = fully_convolutional(model)
    result = []
    for scale in test_scales:
        if scale < crop:
            raise ValueError(f"test scale {scale} is smaller than the {crop} px training crop")
        rows = layer_rows(net, input_size=scale)
        scores = next(row for row in rows if row.name == conv_name(configs.PREDICTIONS_LAYER))
        result.append(DenseCostRow(
            test_scale=scale,
            score_map_side=scores.output_shape[0],
            dense_macs=sum(row.macs for row in rows),
            multi_crop_macs=CROPS_PER_SCALE * crop_macs,
        ))
    return result

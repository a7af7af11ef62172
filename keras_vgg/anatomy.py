"""Model anatomy: the paper's figures computed from the built Keras models, never typed in.

    python -m keras_vgg.anatomy D                  # per layer, per stage, totals; dense cost
    python -m keras_vgg.anatomy --all              # Table 2's ladder and the 3x3-stack argument
    python -m keras_vgg.anatomy E --plot=e.png     # the stage funnel (needs matplotlib)

Every figure comes from walking a model's layers: shapes from each layer's
`compute_output_spec`, parameters from `count_params`, multiply-adds as kernel weights times
output positions, receptive fields from the kernels, strides and dilations of the layers.
Only weight layers (Conv2D, Dense) count multiply-adds; pooling, ReLU, LRN and BatchNorm
cost a few operations per activation and are left out, as in the usual GFLOPs figures.
"""

from __future__ import annotations

import dataclasses
import math
import re
import sys
from collections.abc import Sequence

import keras
from absl import app, flags

from keras_vgg import configs
from keras_vgg.dense import fully_convolutional
from keras_vgg.models import vgg

# Sect. 3.2 / Table 5: 150 crops per image = 3 test scales x (5x5 grid x 2 flips).
MULTI_CROP_VIEWS = 150
# Sect. 4.2: the multi-scale test set Q in {256, 384, 512} of S in [256, 512].
DEFAULT_TEST_SCALES = (256, 384, 512)
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


def _window(layer: keras.layers.Layer, input_shape: tuple[int, ...]):
    """`(kernel, stride, dilation)` per spatial axis of a layer that looks at a window, or
    None. Flatten and global pooling look at the whole input map at once."""
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


def layer_rows(model: keras.Model, *, input_size: int | tuple[int, int] | None = None
               ) -> list[LayerRow]:
    """The model's layers in order, for one `[height, width, channels]` image.

    Args:
      model: a chain of layers (every keras_vgg model, and its `fully_convolutional` form).
      input_size: the image side (or `(height, width)`); required when the model's input
        has no static size, otherwise it must match it.

    Returns:
      One `LayerRow` per layer after the input.
    """
    shape = tuple(model.input_shape[1:])
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
        output_shape = tuple(
            int(side)
            for side in layer.compute_output_spec(keras.KerasTensor((1, *shape))).shape[1:])
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
    return vgg(config, input_shape=(input_size, input_size, 3), kernel_initializer="zeros")


# --- The arguments of the paper -------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class LadderRow:
    """One network of Table 2: weight layers, parameters, multiply-adds at the crop size."""

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
    C -> C channels without biases; weights are given in units of C^2."""

    depth: int
    receptive_field: int
    stack_weights_per_c2: float
    single_kernel: int
    single_weights_per_c2: float
    nonlinearities: tuple[int, int]


def _conv_chain(kernel_sizes: Sequence[int], channels: int) -> keras.Model:
    layers = [keras.layers.Conv2D(channels, size, use_bias=False, activation="relu")
              for size in kernel_sizes]
    return keras.Sequential([keras.Input((None, None, channels)), *layers])


def stack_comparison(max_depth: int = 3, *, channels: int = 8) -> list[StackRow]:
    """Sect. 2.3: a stack of n 3x3 convs sees (2n+1)^2 pixels with 9n C^2 weights and n
    ReLUs; the single conv of that receptive field has (2n+1)^2 C^2 weights and one ReLU.
    Both are built as Keras layers and measured with `layer_rows`."""
    result = []
    for depth in range(1, max_depth + 1):
        stack = layer_rows(_conv_chain([3] * depth, channels), input_size=4 * depth + 8)
        field = stack[-1].receptive_field[0]
        single = layer_rows(_conv_chain([field], channels), input_size=4 * depth + 8)
        result.append(StackRow(
            depth=depth,
            receptive_field=field,
            stack_weights_per_c2=sum(row.params for row in stack) / channels**2,
            single_kernel=single[-1].receptive_field[0],
            single_weights_per_c2=single[-1].params / channels**2,
            nonlinearities=(len(stack), len(single)),
        ))
    return result


@dataclasses.dataclass(frozen=True)
class DenseCostRow:
    """Dense evaluation of a square Q x Q image against 150-crop evaluation."""

    test_scale: int
    score_map_side: int
    dense_macs: int
    multi_crop_macs: int


def dense_costs(model: keras.Model, test_scales: Sequence[int] = DEFAULT_TEST_SCALES
                ) -> list[DenseCostRow]:
    """Score-map side and multiply-adds of the fully-convolutional net at each Q (Sect. 3.2),
    and of `MULTI_CROP_VIEWS` crops through `model` at its own input size."""
    crop_macs = sum(row.macs for row in layer_rows(model))
    crop = model.input_shape[1]
    net = fully_convolutional(model)
    result = []
    for scale in test_scales:
        if scale < crop:
            raise ValueError(f"test scale {scale} is smaller than the {crop} px training crop")
        rows = layer_rows(net, input_size=scale)
        scores = next(row for row in rows if row.name == "predictions_conv")
        result.append(DenseCostRow(
            test_scale=scale,
            score_map_side=scores.output_shape[0],
            dense_macs=sum(row.macs for row in rows),
            multi_crop_macs=MULTI_CROP_VIEWS * crop_macs,
        ))
    return result


# --- Printing ---------------------------------------------------------------------------


def _table(header: Sequence[str], body: Sequence[Sequence[object]]) -> str:
    """A plain-text table, numbers right-aligned."""
    cells = [[str(cell) for cell in header]] + [[str(cell) for cell in line] for line in body]
    widths = [max(len(line[i]) for line in cells) for i in range(len(header))]

    def render(line):
        return "  ".join(
            cell.ljust(width) if i == 0 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(line, widths, strict=True)))

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([render(cells[0]), rule, *map(render, cells[1:])])


def _shape(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape))


def _side(pair: tuple[int, int]) -> str:
    return str(pair[0]) if pair[0] == pair[1] else _shape(pair)


def _count(value: int) -> str:
    """Multiply-adds in M or G."""
    return f"{value / 1e9:,.2f}G" if value >= 1e9 else f"{value / 1e6:,.1f}M"


def _share(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%"


def describe(config: str | configs.VGGConfig, *, input_size: int = configs.DEFAULT_INPUT_SIZE,
             test_scales: Sequence[int] = DEFAULT_TEST_SCALES) -> str:
    """The per-layer, per-stage and total tables of one network, then its dense-evaluation
    cost, as text."""
    model = build(config, input_size=input_size)
    rows = layer_rows(model)
    total_params = sum(row.params for row in rows)
    total_macs = sum(row.macs for row in rows)
    layers = _table(
        ["layer", "type", "output", "receptive field", "params", "% params", "mult-adds",
         "% mult-adds"],
        [[row.name, row.kind, _shape(row.output_shape), _side(row.receptive_field),
          f"{row.params:,}", _share(row.params, total_params), _count(row.macs),
          _share(row.macs, total_macs)] for row in rows])
    stages = _table(
        ["stage", "weight layers", "output", "params", "% params", "mult-adds", "% mult-adds"],
        [[stage.stage, stage.weight_layers, _shape(stage.output_shape), f"{stage.params:,}",
          _share(stage.params, total_params), _count(stage.macs),
          _share(stage.macs, total_macs)] for stage in stage_rows(rows)])
    convs = [row for row in rows if row.kind == "Conv2D"]
    fcs = [row for row in rows if row.kind == "Dense"]
    totals = _table(
        ["part", "weight layers", "params", "% params", "mult-adds", "% mult-adds"],
        [[part, len(members), f"{sum(r.params for r in members):,}",
          _share(sum(r.params for r in members), total_params),
          _count(sum(r.macs for r in members)),
          _share(sum(r.macs for r in members), total_macs)]
         for part, members in (("convolutions", convs), ("fully connected", fcs))]
        + [["total", len(convs) + len(fcs), f"{total_params:,}", "100.0%",
            _count(total_macs), "100.0%"]])
    costs = dense_costs(model, test_scales)

    def cost_line(scale, side, dense_macs, multi_crop_macs):
        return [scale, side, _count(dense_macs), _count(2 * dense_macs),
                _count(multi_crop_macs), f"{multi_crop_macs / (2 * dense_macs):.1f}x"]

    dense = _table(
        ["Q", "score map", "dense", "dense + flip", f"{MULTI_CROP_VIEWS} crops",
         "crops / (dense + flip)"],
        [cost_line(row.test_scale, f"{row.score_map_side}x{row.score_map_side}",
                   row.dense_macs, row.multi_crop_macs) for row in costs]
        + ([cost_line("+".join(str(row.test_scale) for row in costs), "all",
                      sum(row.dense_macs for row in costs), costs[0].multi_crop_macs)]
           if len(costs) > 1 else []))
    name = configs.get(config).name
    return "\n\n".join([
        f"VGG {name} ({model.name}), {input_size}x{input_size}x3 input, one image. Receptive "
        "field: input pixels one output unit sees (past the input's side for the head: in "
        "dense evaluation fc1 is a conv over the whole last feature map).",
        layers, "Per stage", stages, "Totals", totals,
        f"Dense evaluation of a square QxQ image (Sect. 3.2) against {MULTI_CROP_VIEWS}-crop "
        f"evaluation ({MULTI_CROP_VIEWS} x {input_size}x{input_size}), mult-adds per image",
        dense,
    ])


def describe_all(*, input_size: int = configs.DEFAULT_INPUT_SIZE) -> str:
    """Table 2's ladder and the 3x3-stack comparison, as text."""
    networks = _table(
        ["config", "weight layers", "params", "params (M)", "mult-adds"],
        [[row.config, row.weight_layers, f"{row.params:,}", f"{row.params / 1e6:.0f}",
          _count(row.macs)] for row in ladder(input_size=input_size)])
    stacks = _table(
        ["3x3 convs", "receptive field", "weights", "one conv", "weights", "one conv / stack",
         "ReLUs"],
        [[row.depth, f"{row.receptive_field}x{row.receptive_field}",
          f"{row.stack_weights_per_c2:g}C^2", f"{row.single_kernel}x{row.single_kernel}",
          f"{row.single_weights_per_c2:g}C^2",
          f"{row.single_weights_per_c2 / row.stack_weights_per_c2:.2f}x",
          f"{row.nonlinearities[0]} vs {row.nonlinearities[1]}"]
         for row in stack_comparison()])
    return "\n\n".join([
        f"The networks of Table 1 and the 5x5 control network (Sect. 4.1), {input_size}x"
        f"{input_size} input",
        networks,
        "A stack of 3x3 convs against one conv with the same receptive field (Sect. 2.3), "
        "C channels in and out, no biases",
        stacks,
    ])


def plot_funnel(config: str | configs.VGGConfig, path: str, *,
                input_size: int = configs.DEFAULT_INPUT_SIZE) -> None:
    """Writes a PNG: per stage, the feature-map side and channels (top) and the share of
    parameters and multiply-adds (bottom)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib import pyplot
    except ImportError as error:
        raise ImportError(
            "--plot needs matplotlib: pip install 'keras-vgg[plot]'") from error
    model = build(config, input_size=input_size)
    stages = stage_rows(layer_rows(model))
    names = ["input", *(stage.stage for stage in stages)]
    shapes = [tuple(model.input_shape[1:]), *(stage.output_shape for stage in stages)]
    sides = [shape[0] if len(shape) == 3 else 1 for shape in shapes]
    channels = [shape[-1] for shape in shapes]
    total_params = sum(stage.params for stage in stages)
    total_macs = sum(stage.macs for stage in stages)
    positions = range(len(names))

    figure, (funnel, shares) = pyplot.subplots(2, 1, figsize=(8, 7), sharex=True)
    funnel.bar(positions, sides, color="tab:blue", label="feature-map side (px)")
    funnel.set_ylabel("feature-map side (px)")
    funnel.set_title(f"VGG {configs.get(config).name}: the stage funnel at {input_size}x"
                     f"{input_size}")
    depth_axis = funnel.twinx()
    depth_axis.plot(positions, channels, "o-", color="tab:red", label="channels / units")
    depth_axis.set_ylabel("channels (units in the head)")
    depth_axis.set_yscale("log")
    width = 0.4
    shares.bar([p - width / 2 for p in positions], [0] + [100 * s.params / total_params
                                                      for s in stages],
               width, label="% of parameters")
    shares.bar([p + width / 2 for p in positions], [0] + [100 * s.macs / total_macs
                                                      for s in stages],
               width, label="% of multiply-adds")
    shares.set_ylabel("% of the network")
    shares.set_xticks(list(positions), names)
    shares.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    pyplot.close(figure)


def _define_flags() -> None:
    flags.DEFINE_bool("all", False, "Table 2's ladder of networks and the 3x3-stack argument.")
    flags.DEFINE_string("plot", None, "Also draw the stage funnel of the network to this PNG.")
    flags.DEFINE_integer("input_size", configs.DEFAULT_INPUT_SIZE,
                         "Training crop side in pixels (the paper's 224).")
    flags.DEFINE_list("test_scales", [str(q) for q in DEFAULT_TEST_SCALES],
                      "Test scales Q for the dense-evaluation cost.")


def main(argv: Sequence[str]) -> None:
    flags_ = flags.FLAGS
    names = list(argv[1:])
    if flags_.all:
        if names:
            raise app.UsageError(f"--all prints every network; drop {names}")
        print(describe_all(input_size=flags_.input_size))
        return
    if len(names) != 1:
        raise app.UsageError(
            f"name one network (one of {sorted(configs.CONFIGS)} or a model name such as "
            f"vgg16), or pass --all; got {names or 'none'}")
    try:
        config = configs.get(names[0])
    except ValueError as error:
        raise app.UsageError(str(error)) from error
    if not all(scale.isdigit() for scale in flags_.test_scales):
        raise app.UsageError(f"--test_scales must be pixel sides, got {flags_.test_scales}")
    scales = [int(scale) for scale in flags_.test_scales]
    print(describe(config, input_size=flags_.input_size, test_scales=scales))
    if flags_.plot:
        plot_funnel(config, flags_.plot, input_size=flags_.input_size)
        print(f"\nwrote {flags_.plot}", file=sys.stderr)


if __name__ == "__main__":
    _define_flags()
    app.run(main)

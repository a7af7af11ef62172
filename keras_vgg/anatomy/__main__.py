"""The anatomy of a VGG network as tables, and its stage funnel as a plot.

    python -m keras_vgg.anatomy D                  # per layer, per stage, totals; dense cost
    python -m keras_vgg.anatomy --all              # Table 2's ladder and the 3x3-stack argument
    python -m keras_vgg.anatomy E --plot=e.png     # the stage funnel (needs matplotlib)
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import keras
from absl import app, flags

from keras_vgg import configs
from keras_vgg.anatomy import (
    CROPS_PER_SCALE,
    DEFAULT_TEST_SCALES,
    TEST_FLIPS,
    LayerRow,
    build,
    dense_costs,
    image_shape,
    ladder,
    layer_rows,
    stack_comparison,
    stage_rows,
)
from keras_vgg.configs import MULTI_CROP_GRID


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
             test_scales: Sequence[int] = DEFAULT_TEST_SCALES,
             model: keras.Model | None = None) -> str:
    """The per-layer, per-stage and total tables of one network, then its dense-evaluation
    cost, as text. `model` is `build(config, input_size=input_size)` when not given."""
    model = model or build(config, input_size=input_size)
    rows = layer_rows(model)
    total_params = sum(row.params for row in rows)
    total_macs = sum(row.macs for row in rows)
    layers = _table(
        ["layer", "type", "output", "receptive field", "stride", "params", "% params",
         "mult-adds", "% mult-adds"],
        [[row.name, row.kind, _shape(row.output_shape), _side(row.receptive_field),
          _side(row.jump), f"{row.params:,}", _share(row.params, total_params),
          _count(row.macs), _share(row.macs, total_macs)] for row in rows])
    stages = _table(
        ["stage", "weight layers", "output", "params", "% params", "mult-adds", "% mult-adds"],
        [[stage.stage, stage.weight_layers, _shape(stage.output_shape), f"{stage.params:,}",
          _share(stage.params, total_params), _count(stage.macs),
          _share(stage.macs, total_macs)] for stage in stage_rows(rows)])
    parts = {
        "convolutions": [row for row in rows if row.kind == "Conv2D"],
        "fully connected": [row for row in rows if row.kind == "Dense"],
        "other (BatchNorm)": [row for row in rows if not row.is_weight_layer and row.params],
    }

    def total_line(part: str, members: Sequence[LayerRow]) -> list[object]:
        params, macs = sum(r.params for r in members), sum(r.macs for r in members)
        return [part, sum(r.is_weight_layer for r in members), f"{params:,}",
                _share(params, total_params), _count(macs), _share(macs, total_macs)]

    totals = _table(
        ["part", "weight layers", "params", "% params", "mult-adds", "% mult-adds"],
        [total_line(part, members) for part, members in parts.items() if members]
        + [total_line("total", rows)])
    costs = dense_costs(model, test_scales)

    def cost_line(scale: object, side: str, dense_macs: int, crop_macs: int) -> list[object]:
        return [scale, side, _count(dense_macs), _count(TEST_FLIPS * dense_macs),
                _count(crop_macs), f"{crop_macs / (TEST_FLIPS * dense_macs):.1f}x"]

    dense = _table(
        ["Q", "score map", "dense", "dense + flip", "crops", "crops / (dense + flip)"],
        [cost_line(row.test_scale, f"{row.score_map_side}x{row.score_map_side}",
                   row.dense_macs, row.multi_crop_macs) for row in costs]
        + ([cost_line("+".join(str(row.test_scale) for row in costs), "all",
                      sum(row.dense_macs for row in costs),
                      sum(row.multi_crop_macs for row in costs))]
           if len(costs) > 1 else []))
    name = configs.get(config).name
    return "\n\n".join([
        f"VGG {name} ({model.name}), {input_size}x{input_size}x3 input, one image. Receptive "
        "field: input pixels one output unit sees (past the input's side for the head: in "
        "dense evaluation fc1 is a conv over the whole last feature map); stride: input "
        "pixels between neighbouring output units.",
        layers, "Per stage", stages, "Totals", totals,
        f"Dense evaluation of a square QxQ image (Sect. 3.2) against multi-crop evaluation "
        f"at the same Q ({CROPS_PER_SCALE} crops of {input_size}x{input_size}: a "
        f"{MULTI_CROP_GRID}x{MULTI_CROP_GRID} grid and its flips; the paper's 150 crops are "
        "3 scales), mult-adds per image",
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
          f"{row.relus[0]} vs {row.relus[1]}"]
         for row in stack_comparison()])
    return "\n\n".join([
        f"The networks of Table 1 and the 5x5 control network (Sect. 4.1), {input_size}x"
        f"{input_size} input",
        networks,
        "A stack of 3x3 convs against one conv with the same receptive field (Sect. 2.3), "
        "C channels in and out, no biases",
        stacks,
    ])


def plot_funnel(model: keras.Model, path: str, *, title: str) -> None:
    """Writes a PNG of `model`: per stage, the feature-map side and channels (top) and the
    share of parameters and multiply-adds (bottom)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib import pyplot
    except ImportError as error:
        raise ImportError(
            "--plot needs matplotlib: pip install 'keras-vgg[plot]'") from error
    stages = stage_rows(layer_rows(model))
    names = ["input", *(stage.stage for stage in stages)]
    shapes = [image_shape(model), *(stage.output_shape for stage in stages)]
    sides = [shape[0] if len(shape) == 3 else 1 for shape in shapes]
    channels = [shape[-1] for shape in shapes]
    total_params = sum(stage.params for stage in stages)
    total_macs = sum(stage.macs for stage in stages)
    positions = range(len(names))

    figure, (funnel, shares) = pyplot.subplots(2, 1, figsize=(8, 7), sharex=True)
    funnel.bar(positions, sides, color="tab:blue")
    funnel.set_ylabel("feature-map side (px)")
    funnel.set_title(title)
    depth_axis = funnel.twinx()
    depth_axis.plot(positions, channels, "o-", color="tab:red")
    depth_axis.set_ylabel("channels (units in the head), log scale")
    depth_axis.set_yscale("log")
    width = 0.4
    shares.bar([p - width / 2 for p in positions],
               [0] + [100 * stage.params / total_params for stage in stages],
               width, label="% of parameters")
    shares.bar([p + width / 2 for p in positions],
               [0] + [100 * stage.macs / total_macs for stage in stages],
               width, label="% of multiply-adds")
    shares.set_ylabel("% of the network")
    shares.set_xticks(list(positions), names)
    shares.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    pyplot.close(figure)


def define_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
    """The command's flags, in `flag_values` (a test's own, or absl's global ones)."""
    flags.DEFINE_bool("all", False, "Table 2's ladder of networks and the 3x3-stack argument.",
                      flag_values=flag_values)
    flags.DEFINE_string("plot", None, "Also draw the stage funnel of the network to this PNG.",
                        flag_values=flag_values)
    flags.DEFINE_integer("input_size", configs.DEFAULT_INPUT_SIZE,
                         "Training crop side in pixels (the paper's 224).",
                         flag_values=flag_values)
    flags.DEFINE_list("test_scales", [str(q) for q in DEFAULT_TEST_SCALES],
                      "Test scales Q in pixels for the dense-evaluation cost.",
                      flag_values=flag_values)


def _test_scales(values: Sequence[str], input_size: int) -> list[int]:
    if not values or not all(value.isdigit() for value in values):
        raise app.UsageError(f"--test_scales must be pixel sides, got {list(values)}")
    scales = [int(value) for value in values]
    if min(scales) < input_size:
        raise app.UsageError(
            f"--test_scales={','.join(values)}: each Q must be at least the {input_size} px "
            "training crop (--input_size)")
    return scales


def main(argv: Sequence[str], options: flags.FlagValues = flags.FLAGS) -> None:
    names = list(argv[1:])
    if options.input_size < configs.MIN_INPUT_SIZE:
        raise app.UsageError(f"--input_size={options.input_size}: at least "
                             f"{configs.MIN_INPUT_SIZE} (five 2x2 max-pools)")
    if options.all:
        ignored = [f"--{name}" for name in ("plot", "test_scales") if options[name].present]
        if names or ignored:
            raise app.UsageError(f"--all prints every network; drop {names + ignored}")
        print(describe_all(input_size=options.input_size))
        return
    if len(names) != 1:
        raise app.UsageError(
            f"name one network (one of {sorted(configs.CONFIGS)} or a model name such as "
            f"vgg16), or pass --all; got {names or 'none'}")
    try:
        config = configs.get(names[0])
    except ValueError as error:
        raise app.UsageError(str(error)) from error
    scales = _test_scales(options.test_scales, options.input_size)
    model = build(config, input_size=options.input_size)
    print(describe(config, input_size=options.input_size, test_scales=scales, model=model))
    if options.plot:
        plot_funnel(model, options.plot, title=f"VGG {config.name}: the stage funnel at "
                    f"{options.input_size}x{options.input_size}")
        print(f"\nwrote {options.plot}", file=sys.stderr)


if __name__ == "__main__":
    define_flags()
    app.run(main)

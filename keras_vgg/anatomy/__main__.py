"""The anatomy of a VGG network as tables, and its stage funnel as a plot.

    python -m keras_vgg.anatomy D                  # per layer, per stage, totals; dense cost
    python -m keras_vgg.anatomy --all              # Table 2's ladder and the 3x3-stack argument
    python -m keras_vgg.anatomy E --plot=e.png     # the stage funnel (needs matplotlib)
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from absl import app, flags

from keras_vgg import configs
from keras_vgg.anatomy import (
    DEFAULT_TEST_SCALES,
    MULTI_CROP_VIEWS,
    build,
    dense_costs,
    ladder,
    layer_rows,
    stack_comparison,
    stage_rows,
)


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

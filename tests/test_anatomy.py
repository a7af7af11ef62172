import re

import keras
import numpy as np
import pytest
from absl import app, flags
from conftest import NARROW, forward
from test_models import PAPER_PARAMETERS

import keras_vgg
from keras_vgg import anatomy, configs
from keras_vgg.anatomy import __main__ as cli

# Table 2 of the paper: parameters in millions; Table 1: weight layers.
PAPER_TABLE_2_MILLIONS = {"A": 133, "A-LRN": 133, "B": 133, "C": 134, "D": 138, "E": 144}
PAPER_WEIGHT_LAYERS = {"A": 11, "A-LRN": 11, "B": 13, "C": 16, "D": 16, "E": 19}
# torchvision's model cards (GFLOPS, i.e. giga multiply-adds, of vgg11/13/16/19 at 224).
TORCHVISION_GMACS = {"A": 7.61, "B": 11.31, "D": 15.47, "E": 19.63}
# Receptive fields of VGG16's pooling layers, as tabulated in the literature (e.g. Araujo et
# al., "Computing receptive fields of convolutional neural networks", Distill 2019).
VGG16_POOL_FIELDS = {"block1_pool": 6, "block2_pool": 16, "block3_pool": 44,
                     "block4_pool": 100, "block5_pool": 212}


@pytest.fixture(scope="module")
def ladder():
    return {row.config: row for row in anatomy.ladder()}


@pytest.mark.full_size
def test_vgg16_table_has_the_papers_counts():
    model = anatomy.build("D")
    rows = anatomy.layer_rows(model)
    by_name = {row.name: row for row in rows}
    total = sum(row.params for row in rows)
    assert total == model.count_params() == 138_357_544
    convs = [row for row in rows if row.kind == "Conv2D"]
    assert len(convs) == 13
    assert sum(row.params for row in convs) == 14_714_688
    assert round(100 * sum(row.params for row in convs) / total, 1) == 10.6
    assert by_name["fc1"].params == 102_764_544
    assert round(100 * by_name["fc1"].params / total) == 74
    macs = sum(row.macs for row in rows)
    assert sum(row.macs for row in convs) / macs > 0.99
    # block1_conv2: 224 x 224 positions x 64 filters x 3 x 3 x 64 inputs.
    assert by_name["block1_conv2"].macs == 224 * 224 * 64 * 3 * 3 * 64
    assert by_name["block5_pool"].output_shape == (7, 7, 512)
    for name, field in VGG16_POOL_FIELDS.items():
        assert by_name[name].receptive_field == (field, field)
    stages = anatomy.stage_rows(rows)
    assert [stage.stage for stage in stages] == [f"block{b}" for b in range(1, 6)] + ["head"]
    assert sum(stage.params for stage in stages) == total
    assert sum(stage.macs for stage in stages) == macs


@pytest.mark.full_size
@pytest.mark.parametrize("name", list(configs.TABLE_1))
def test_ladder_matches_table_2(ladder, name):
    row = ladder[name]
    assert row.weight_layers == PAPER_WEIGHT_LAYERS[name] == configs.get(name).weight_layers
    assert round(row.params / 1e6) == PAPER_TABLE_2_MILLIONS[name]
    assert row.params == PAPER_PARAMETERS[name]
    if name in TORCHVISION_GMACS:
        assert round(row.macs / 1e9, 2) == TORCHVISION_GMACS[name]


@pytest.mark.full_size
def test_ladder_includes_the_5x5_control_network(ladder):
    control = ladder["B-5x5"]
    # Five 5x5 convs replace B's ten 3x3 convs: same receptive field, half the depth.
    assert control.weight_layers == ladder["B"].weight_layers - 5
    assert control.params > ladder["B"].params


@pytest.mark.full_size
@pytest.mark.parametrize("name", list(configs.CONFIGS))
def test_every_network_s_tables_add_up(name):
    config = configs.get(name)
    model = anatomy.build(name)
    rows = anatomy.layer_rows(model)
    by_name = {row.name: row for row in rows}
    total = sum(row.params for row in rows)
    assert total == model.count_params() and model.output_shape == (None, 1000)
    if name in PAPER_PARAMETERS:  # the builder's own network (anatomy.build is keras_vgg.vgg)
        assert total == PAPER_PARAMETERS[name]
    assert sum(row.kind == "Conv2D" for row in rows) == config.num_convs
    assert sum(row.is_weight_layer for row in rows) == config.weight_layers
    assert [row.output_shape for row in rows if row.name.endswith("_pool")] == [
        (224 // 2**b, 224 // 2**b, width) for b, width in enumerate(config.widths, start=1)]
    assert by_name["fc1"].params == 7 * 7 * 512 * 4096 + 4096
    assert by_name["block5_pool"].jump == (32, 32)
    stages = anatomy.stage_rows(rows)
    assert sum(stage.params for stage in stages) == total
    assert sum(stage.macs for stage in stages) == sum(row.macs for row in rows)
    assert [stage.weight_layers for stage in stages] == [
        len(kernels) for kernels in config.kernel_sizes] + [3]
    text = cli.describe(name, test_scales=[384], model=model)
    assert f"{total:,}" in text and "6x6" in text


def test_stack_of_3x3_convs_against_one_big_filter():
    rows = anatomy.stack_comparison(3)
    assert [row.receptive_field for row in rows] == [3, 5, 7]
    assert [row.single_kernel for row in rows] == [3, 5, 7]
    assert [row.stack_weights_per_c2 for row in rows] == [9, 18, 27]
    assert [row.single_weights_per_c2 for row in rows] == [9, 25, 49]
    assert [row.relus for row in rows] == [(1, 1), (2, 1), (3, 1)]


def _empirical_receptive_field(model: keras.Model, size: int) -> int:
    """Rows of the input whose change moves the centre output unit: with positive kernels and
    inputs every ReLU passes, and a pixel raised far enough wins every max-pool it enters."""
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            layer.set_weights([np.ones_like(w) if w.ndim > 1 else np.zeros_like(w)
                               for w in layer.get_weights()])
    rng = np.random.default_rng(0)
    base = rng.uniform(1, 2, (1, size, size, 3)).astype("float32")
    probes = np.repeat(base, size, axis=0)
    probes[np.arange(size), np.arange(size), size // 2] += 1e4
    outputs = forward(model, np.concatenate([base, probes]))
    centre = outputs.shape[1] // 2, outputs.shape[2] // 2
    changed = ~np.isclose(outputs[1:, centre[0], centre[1]], outputs[0, centre[0], centre[1]],
                          rtol=1e-6).all(axis=-1)
    return int(changed.sum())


@pytest.mark.parametrize("last_layer", ["block2_conv2", "block3_pool", "block4_conv1"])
def test_receptive_fields_match_the_network_s_behaviour(last_layer):
    full = keras_vgg.vgg("D", include_top=False, width_multiplier=NARROW,
                         input_shape=(160, 160, 3))
    model = keras.Model(full.input, full.get_layer(last_layer).output)
    field = anatomy.layer_rows(model)[-1].receptive_field
    assert field[0] == field[1] < 160 // 2
    assert _empirical_receptive_field(model, 160) == field[0]


def test_score_map_side_matches_the_fully_convolutional_net(images):
    model = keras_vgg.vgg("D", width_multiplier=NARROW, classes=5)
    costs = anatomy.dense_costs(model, [224, 256, 320, 384])
    assert [row.score_map_side for row in costs] == [q // 32 - 6 for q in (224, 256, 320, 384)]
    net = keras_vgg.fully_convolutional(model)
    scores = forward(net, images(1, 320))[keras_vgg.dense.SCORE_MAP]
    assert scores.shape[1:3] == (costs[2].score_map_side,) * 2
    # At the crop size the fully-convolutional net does exactly the crop's work.
    crop_macs = sum(row.macs for row in anatomy.layer_rows(model))
    assert costs[0].dense_macs == crop_macs
    assert anatomy.CROPS_PER_SCALE == 50  # Sect. 3.2: 5x5 grid x 2 flips
    assert costs[0].multi_crop_macs == 50 * crop_macs
    assert costs[3].dense_macs > costs[1].dense_macs


def test_dense_cost_rejects_a_scale_below_the_crop():
    model = keras_vgg.vgg("A", width_multiplier=NARROW, classes=5)
    with pytest.raises(ValueError, match="test scale 200 is smaller than the 224"):
        anatomy.dense_costs(model, [200])


def test_layer_rows_need_a_size_for_a_model_of_any_size():
    model = keras_vgg.vgg("A", include_top=False, width_multiplier=NARROW)
    with pytest.raises(ValueError, match="pass input_size"):
        anatomy.layer_rows(model)
    rows = anatomy.layer_rows(model, input_size=(64, 96))
    assert rows[-1].output_shape == (2, 3, 32)
    assert rows[-1].receptive_field == (anatomy.layer_rows(model, input_size=64)[-1]
                                        .receptive_field)


def test_lrn_and_batch_norm_layers_are_walked():
    lrn = anatomy.layer_rows(keras_vgg.vgg("A-LRN", width_multiplier=NARROW))
    assert "block1_lrn" in [row.name for row in lrn]
    bn_model = keras_vgg.vgg("D-BN", width_multiplier=NARROW)
    bn = anatomy.layer_rows(bn_model)
    assert sum(row.params for row in bn) == bn_model.count_params()
    assert sum(row.is_weight_layer for row in bn) == 16


def _anatomy(capsys, *args: str) -> str:
    """What `python -m keras_vgg.anatomy args` prints, run in this process."""
    options = flags.FlagValues()
    cli.define_flags(options)
    cli.main(options(["anatomy", *args]), options)
    return capsys.readouterr().out


@pytest.mark.full_size
def test_cli_prints_a_network_and_plots_its_funnel(tmp_path, capsys):
    plot = tmp_path / "funnel.png"
    printed = _anatomy(capsys, "vgg16", "--test_scales=256,384", f"--plot={plot}")
    for text in ("block5_pool", "14,714,688", "10.6%", "102,764,544", "74.3%", "99.2%",
                 "Per stage", "Totals", "6x6", "256+384"):
        assert text in printed
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.full_size
def test_cli_prints_the_ladder(capsys):
    printed = _anatomy(capsys, "--all")
    for text in ("B-5x5", "143,667,240", "27C^2", "49C^2"):
        assert text in printed


@pytest.mark.parametrize(
    "args, message",
    [(["F"], "unknown VGG config 'F'"), ([], "name one network"),
     (["--all", "D"], "--all prints every network"),
     (["D", "--test_scales=x"], "--test_scales must be pixel sides"),
     (["D", "--test_scales="], "--test_scales must be pixel sides"),
     (["D", "--test_scales=200"], "each Q must be at least the 224 px"),
     (["D", "--input_size=16"], "--input_size=16: at least 32"),
     (["--all", "--plot=x.png"], "drop ['--plot']")],
)
def test_cli_rejects_bad_arguments(args, message):
    options = flags.FlagValues()
    cli.define_flags(options)
    with pytest.raises(app.UsageError, match=re.escape(message)):
        cli.main(options(["anatomy", *args]), options)

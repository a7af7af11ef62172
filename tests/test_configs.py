import pytest

from keras_vgg import configs

# Table 1: weight layers and convs per stage of each column.
TABLE_1_SHAPE = {
    "A": (11, (1, 1, 2, 2, 2)),
    "A-LRN": (11, (1, 1, 2, 2, 2)),
    "B": (13, (2, 2, 2, 2, 2)),
    "C": (16, (2, 2, 3, 3, 3)),
    "D": (16, (2, 2, 3, 3, 3)),
    "E": (19, (2, 2, 4, 4, 4)),
}


@pytest.mark.parametrize("name", sorted(TABLE_1_SHAPE))
def test_table_1_columns(name):
    config = configs.TABLE_1[name]
    weight_layers, convs_per_stage = TABLE_1_SHAPE[name]
    assert config.weight_layers == weight_layers
    assert tuple(len(stage) for stage in config.kernel_sizes) == convs_per_stage
    assert config.widths == (64, 128, 256, 512, 512)
    assert config.fc_units == (4096, 4096)
    assert config.lrn == (name == "A-LRN")
    assert not config.batch_norm


def test_only_c_has_1x1_convs_and_only_as_the_third_conv_of_stages_3_to_5():
    for name, config in configs.TABLE_1.items():
        one_by_one = [
            (stage, index)
            for stage, kernels in enumerate(config.kernel_sizes, start=1)
            for index, kernel in enumerate(kernels, start=1)
            if kernel == 1
        ]
        assert one_by_one == ([(3, 3), (4, 3), (5, 3)] if name == "C" else [])


@pytest.mark.parametrize("letter", ["A", "B", "D", "E"])
def test_batch_norm_variants_keep_the_convs(letter):
    variant = configs.CONFIGS[f"{letter}-BN"]
    assert variant.batch_norm
    assert variant.kernel_sizes == configs.TABLE_1[letter].kernel_sizes
    assert variant.model_name == configs.TABLE_1[letter].model_name + "_bn"


def test_5x5_control_replaces_each_pair_of_3x3_convs_of_b():
    control = configs.CONFIGS["B-5x5"]
    assert control.kernel_sizes == ((5,),) * 5
    assert control.widths == configs.TABLE_1["B"].widths
    assert control.weight_layers == 5 + 3


def test_5x5_control_needs_pairs_of_3x3():
    with pytest.raises(ValueError, match="pair of 3x3"):
        configs.with_pairs_as_5x5(configs.TABLE_1["D"])


@pytest.mark.parametrize(
    "query, expected",
    [("D", "D"), ("d", "D"), ("a-lrn", "A-LRN"), ("vgg16", "D"), ("VGG19_BN", "E-BN"),
     ("vgg11", "A"), ("b-5x5", "B-5x5"), (" E ", "E")],
)
def test_lookup_by_letter_variant_or_model_name(query, expected):
    assert configs.get(query).name == expected


def test_unknown_config_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown VGG config 'F'.*'A-LRN'"):
        configs.get("F")
    with pytest.raises(TypeError, match="int"):
        configs.get(16)

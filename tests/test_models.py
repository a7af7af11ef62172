import inspect
import random

import keras
import numpy as np
import pytest
from conftest import NARROW, forward

import keras_vgg
from keras_vgg import configs

# The paper's Table 2: parameters of each configuration (1000 classes, 224 px).
PAPER_PARAMETERS = {
    "A": 132_863_336,
    "A-LRN": 132_863_336,
    "B": 133_047_848,
    "C": 133_638_952,
    "D": 138_357_544,
    "E": 143_667_240,
}


@pytest.mark.full_size
def test_batch_norm_adds_scale_and_shift_per_channel():
    model = keras_vgg.vgg("D", batch_norm=True)
    d = configs.TABLE_1["D"]
    channels = sum(
        width * len(kernels) for width, kernels in zip(d.widths, d.kernel_sizes, strict=True)
    )
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert trainable == PAPER_PARAMETERS["D"] + 2 * channels  # torchvision vgg16_bn: 138,365,992
    assert model.count_params() == PAPER_PARAMETERS["D"] + 4 * channels


@pytest.mark.full_size
@pytest.mark.parametrize(
    "ours, theirs", [(keras_vgg.VGG16, keras.applications.VGG16),
                     (keras_vgg.VGG19, keras.applications.VGG19)]
)
def test_weighted_layers_match_keras_applications(ours, theirs):
    mine = ours(weights=None)
    reference = theirs(weights=None)
    assert mine.name == reference.name

    def weighted(model):
        return [(layer.name, [tuple(w.shape) for w in layer.weights])
                for layer in model.layers if layer.weights]

    assert weighted(mine) == weighted(reference)
    pools = [layer.name for layer in reference.layers if "pool" in layer.name]
    assert [layer.name for layer in mine.layers if "pool" in layer.name] == pools


@pytest.mark.parametrize(
    "ours, theirs", [(keras_vgg.VGG16, keras.applications.VGG16),
                     (keras_vgg.VGG19, keras.applications.VGG19)]
)
def test_signature_is_keras_applications(ours, theirs):
    expected = inspect.signature(theirs).parameters
    actual = inspect.signature(ours).parameters
    for name, parameter in expected.items():
        assert actual[name].default == parameter.default, name
    assert list(actual)[: len(expected)] == list(expected)


def test_vgg11_and_vgg13_build_with_random_weights_by_default(monkeypatch):
    """Keras publishes no VGG11/13 ImageNet weights: their default fetches nothing."""

    def no_download(*args, **kwargs):
        raise AssertionError(f"a download was attempted: {args}")

    monkeypatch.setattr(keras.utils, "get_file", no_download)
    for builder in (keras_vgg.VGG11, keras_vgg.VGG13):
        first, second = (builder(include_top=False, input_shape=(32, 32, 3),
                                 width_multiplier=NARROW) for _ in range(2))
        assert first.get_weights()[0].std() > 0
        assert not np.allclose(first.get_weights()[0], second.get_weights()[0])


def test_width_multiplier_scales_convs_and_fc_units():
    model = keras_vgg.vgg("B", width_multiplier=0.25, input_shape=(32, 32, 3), classes=7)
    assert model.get_layer("block1_conv1").filters == 16
    assert model.get_layer("block5_conv2").filters == 128
    assert model.get_layer("fc1").units == 1024
    assert model.get_layer("fc2").units == 1024
    assert model.get_layer("predictions").units == 7


def test_lrn_follows_the_first_conv_of_a_lrn():
    names = [layer.name for layer in keras_vgg.vgg("A-LRN", width_multiplier=NARROW).layers]
    assert names[1:4] == ["block1_conv1", "block1_lrn", "block1_pool"]


def test_batch_norm_order_is_conv_bn_relu():
    model = keras_vgg.vgg("A", batch_norm=True, width_multiplier=NARROW)
    names = [layer.name for layer in model.layers]
    assert names[1:5] == ["block1_conv1", "block1_bn1", "block1_relu1", "block1_pool"]
    assert model.get_layer("block1_conv1").activation.__name__ == "linear"
    assert model.name == "vgg11_bn"


def test_dropout_after_fc1_and_fc2_only_in_training(images):
    model = keras_vgg.vgg("A", width_multiplier=NARROW, input_shape=(32, 32, 3))
    names = [layer.name for layer in model.layers]
    assert names[-5:] == ["fc1", "fc1_dropout", "fc2", "fc2_dropout", "predictions"]
    assert model.get_layer("fc1_dropout").rate == 0.5
    x = images(4, 32)
    np.testing.assert_array_equal(model(x, training=False), model(x, training=False))
    assert not np.allclose(model(x, training=True), model(x, training=False))
    no_dropout = keras_vgg.vgg("A", width_multiplier=NARROW, dropout=0.0)
    assert not any(isinstance(layer, keras.layers.Dropout) for layer in no_dropout.layers)


def test_gaussian_init_is_the_papers_normal_read_as_std_0_01():
    model = keras_vgg.vgg("A", width_multiplier=NARROW, kernel_initializer="gaussian",
                          input_shape=(64, 64, 3))
    kernel = np.asarray(model.get_layer("fc1").kernel)  # 2*2*32 x 256 samples
    assert abs(kernel.std() - 0.01) < 0.0005 and abs(kernel.mean()) < 0.0005
    assert not np.any(np.asarray(model.get_layer("fc1").bias))


def test_glorot_init_scale():
    model = keras_vgg.vgg("A", width_multiplier=NARROW, kernel_initializer="glorot",
                          input_shape=(64, 64, 3))
    kernel = np.asarray(model.get_layer("fc1").kernel)
    fan_in, fan_out = kernel.shape
    assert kernel.std() == pytest.approx(np.sqrt(2 / (fan_in + fan_out)), rel=0.05)


def test_feature_extraction_from_block4_pool(images):
    base = keras_vgg.VGG16(weights=None, include_top=False, width_multiplier=NARROW)
    assert base.input_shape == (None, None, None, 3)
    extractor = keras.Model(base.input, base.get_layer("block4_pool").output)
    assert forward(extractor, images(1, 96)).shape == (1, 6, 6, 32)
    assert forward(base, images(1, 96)).shape == (1, 3, 3, 32)


@pytest.mark.parametrize("pooling", ["avg", "max"])
def test_global_pooling(pooling, images):
    model = keras_vgg.VGG19(weights=None, include_top=False, pooling=pooling,
                            width_multiplier=NARROW)
    features = forward(model, images(2, 64))
    assert features.shape == (2, 32)
    trunk = keras.Model(model.input, model.get_layer("block5_pool").output)
    reduce = np.mean if pooling == "avg" else np.max
    np.testing.assert_allclose(
        features, reduce(forward(trunk, images(2, 64)), axis=(1, 2)), rtol=1e-5
    )


def test_input_tensor_is_used(images):
    inputs = keras.Input((48, 48, 3))
    model = keras_vgg.VGG13(input_tensor=inputs, include_top=False, width_multiplier=NARROW)
    assert model.inputs[0] is inputs
    assert model.output_shape == (None, 1, 1, 32)


def test_get_config_round_trips_with_batch_norm_and_the_papers_init(images):
    model = keras_vgg.vgg("A-LRN", width_multiplier=NARROW, batch_norm=True,
                          kernel_initializer="gaussian", input_shape=(32, 32, 3))
    clone = keras.Model.from_config(model.get_config())
    assert clone.get_config() == model.get_config()
    clone.set_weights(model.get_weights())
    x = images(2, 32)
    np.testing.assert_allclose(forward(clone, x), forward(model, x),
                               atol=1e-6)


def test_a_model_built_with_weights_has_them_and_the_requested_initializer(tmp_path, images):
    options = dict(width_multiplier=NARROW, kernel_initializer="gaussian",
                   input_shape=(32, 32, 3))
    source = keras_vgg.vgg("A", **options)
    source.save_weights(tmp_path / "a.weights.h5")
    loaded = keras_vgg.vgg("A", weights=tmp_path / "a.weights.h5", **options)
    x = images(2, 32)
    np.testing.assert_array_equal(forward(loaded, x), forward(source, x))
    assert [layer.get_config() for layer in loaded.layers[1:]] == [
        layer.get_config() for layer in source.layers[1:]]  # all but the input's own name
    # A clone draws the paper's N(0, 0.01^2), not the zeros the loaded layers started from.
    clone = keras.Model.from_config(loaded.get_config())
    assert abs(np.asarray(clone.get_layer("fc1").kernel).std() - 0.01) < 0.0005


def test_a_model_built_with_weights_is_seeded_as_one_loaded_after_its_build(tmp_path, images):
    """Under a seed, the same dropout masks, and the same random state after the build."""
    options = dict(width_multiplier=NARROW, input_shape=(32, 32, 3), dropout=0.5)
    keras_vgg.vgg("A", **options).save_weights(tmp_path / "a.weights.h5")
    x = images(2, 32)
    keras.utils.set_random_seed(1)
    built = keras_vgg.vgg("A", weights=tmp_path / "a.weights.h5", **options)
    state_after_built = random.getstate()
    keras.utils.set_random_seed(1)
    loaded = keras_vgg.vgg("A", **options)
    loaded.load_weights(tmp_path / "a.weights.h5")
    assert random.getstate() == state_after_built
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(built(x, training=True)),
                                  keras.ops.convert_to_numpy(loaded(x, training=True)))


@pytest.mark.parametrize(
    "kwargs, error",
    [
        (dict(weights="no/such/file.h5"), "weights.*no such file"),
        (dict(weights="imagenet", classes=10), "classes` should be 1000"),
        (dict(weights="imagenet", input_shape=(256, 256, 3)), r"should be \(224, 224, 3\)"),
        (dict(include_top=False, weights="imagenet", input_shape=(64, 64, 1)), "3 channels"),
        (dict(input_shape=(None, None, 3)), "static `input_shape`"),
        (dict(include_top=False, input_shape=(31, 64, 3)), "at least 32x32"),
        (dict(input_shape=(224, 224)), "three integers"),
        (dict(include_top=False, pooling="sum"), "pooling"),
        (dict(classes=0), "positive integer"),
        (dict(weights="imagenet", classifier_activation="relu"), "softmax"),
        (dict(dropout=1.0), r"dropout.*\[0, 1\)"),
        (dict(width_multiplier=0), "positive"),
        (dict(weights="imagenet", width_multiplier=0.5), "width_multiplier=1.0"),
        (dict(kernel_initializer="zeroes_please"), "kernel_initializer"),
    ],
)
def test_bad_arguments_raise_clear_errors(kwargs, error):
    with pytest.raises(ValueError, match=error):
        keras_vgg.VGG16(**{"weights": None, **kwargs})


@pytest.mark.parametrize("name", ["A", "A-LRN", "B", "C", "D-BN", "B-5x5"])
def test_imagenet_weights_only_for_d_and_e(name):
    with pytest.raises(ValueError, match=r"exists for configs \['D', 'E'\].*torchvision"):
        keras_vgg.vgg(name, weights="imagenet")


def test_input_tensor_must_be_a_keras_tensor():
    with pytest.raises(ValueError, match="Keras tensor"):
        keras_vgg.VGG16(weights=None, include_top=False, input_tensor=np.zeros((1, 32, 32, 3)),
                        input_shape=(32, 32, 3))

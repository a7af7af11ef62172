"""The model contract, for every configuration in `configs.CONFIGS` (in the manner of
KerasHub's `run_vision_backbone_test` and timm's parametrised model tests): it builds with
Table 1's layers, predicts, survives `get_config` and the `.keras` file in safe mode, gives
the same numbers in either image layout, and its fully-convolutional form is the model at
the training crop size.

CI runs this module on the TensorFlow backend and on JAX (`make test`); TensorFlow's CPU
kernels have no channels_first convolution, so that comparison runs on JAX.
"""

import keras
import numpy as np
import pytest
from conftest import NARROW, forward

import keras_vgg
from keras_vgg import configs, dense

CROP = 32
CLASSES = 5


def built(name: str, seed: int = 0) -> keras.Model:
    """A narrow net with non-trivial batch-norm statistics (BN configs), dropout off."""
    keras.utils.set_random_seed(seed)
    model = keras_vgg.vgg(name, width_multiplier=NARROW, input_shape=(CROP, CROP, 3),
                          classes=CLASSES, dropout=0.0)
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, variance = layer.get_weights()
            layer.set_weights([gamma * 1.5, beta + 0.1, mean + rng.normal(0, 1, mean.shape),
                               variance + 1.0])
    return model


@pytest.fixture(scope="module", params=sorted(configs.CONFIGS))
def case(request):
    """`(config name, model, preprocessed images [2, 32, 32, 3], its predictions)`."""
    model = built(request.param)
    x = keras_vgg.preprocess_input(
        np.random.default_rng(1).uniform(0, 255, (2, CROP, CROP, 3)).astype("float32"))
    return request.param, model, x, forward(model, x)


def test_it_has_table_1s_layers_and_predicts(case):
    name, model, x, probabilities = case
    config = configs.get(name)
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert [conv.kernel_size[0] for conv in convs] == [
        kernel for stage in config.kernel_sizes for kernel in stage]
    assert len([layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]) == 3
    assert len([layer for layer in model.layers
                if isinstance(layer, keras.layers.BatchNormalization)]) == (
        config.num_convs if config.batch_norm else 0)
    assert probabilities.shape == (2, CLASSES)
    np.testing.assert_allclose(model.predict(x, verbose=0), probabilities, atol=1e-6)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    assert not np.allclose(probabilities[0], probabilities[1], atol=1e-4)


def test_get_config_round_trips(case):
    _, model, x, probabilities = case
    clone = keras.Model.from_config(model.get_config())
    assert clone.get_config() == model.get_config()
    clone.set_weights(model.get_weights())
    np.testing.assert_allclose(forward(clone, x), probabilities, atol=1e-6)


def test_the_keras_file_round_trips_in_safe_mode(case, tmp_path):
    _, model, x, probabilities = case
    model.save(tmp_path / "model.keras")
    restored = keras.saving.load_model(tmp_path / "model.keras", safe_mode=True)
    assert [layer.name for layer in restored.layers] == [layer.name for layer in model.layers]
    np.testing.assert_allclose(forward(restored, x), probabilities, atol=1e-6)


def test_the_dense_form_is_the_model_at_the_crop_size(case):
    _, model, x, probabilities = case
    outputs = dense.fully_convolutional(model)(x)
    assert tuple(outputs[dense.SCORE_MAP].shape) == (2, 1, 1, CLASSES)
    np.testing.assert_allclose(np.asarray(outputs[dense.PROBABILITIES]), probabilities,
                               atol=1e-5)
    bigger = np.concatenate([x, x[:, :, ::-1]], axis=2)  # 32x64: two positions
    assert tuple(dense.fully_convolutional(model)(bigger)[dense.SCORE_MAP].shape) == (
        2, 1, 2, CLASSES)


@pytest.mark.skipif(
    keras.backend.backend() == "tensorflow",
    reason="TensorFlow's CPU kernels have no channels_first convolution; the JAX run covers it")
def test_channels_first_computes_what_channels_last_does(case, tmp_path):
    name, model, x, probabilities = case
    model.save_weights(tmp_path / "w.weights.h5")
    keras.config.set_image_data_format("channels_first")
    try:
        first = keras_vgg.vgg(name, width_multiplier=NARROW, input_shape=(3, CROP, CROP),
                              classes=CLASSES, dropout=0.0,
                              weights=str(tmp_path / "w.weights.h5"))
    finally:
        keras.config.set_image_data_format("channels_last")
    channels_first = x.transpose(0, 3, 1, 2)
    np.testing.assert_allclose(forward(first, channels_first), probabilities,
                               rtol=1e-4, atol=1e-6)
    first_map = dense.fully_convolutional(first)(channels_first)[dense.SCORE_MAP]
    last_map = dense.fully_convolutional(model)(x)[dense.SCORE_MAP]
    np.testing.assert_allclose(np.asarray(first_map).transpose(0, 2, 3, 1),
                               np.asarray(last_map), rtol=1e-4, atol=1e-5)

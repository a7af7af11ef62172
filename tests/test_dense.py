import numpy as np
import pytest
from conftest import NARROW, forward

import keras_vgg
from keras_vgg import dense


@pytest.mark.parametrize("size, side", [(224, 1), (256, 2), (384, 6), (512, 10)])
def test_score_map_side_is_q_over_32_minus_6(size, side, images):
    model = dense.fully_convolutional(keras_vgg.vgg("D", width_multiplier=NARROW))
    outputs = forward(model, images(1, size))
    assert outputs["score_map"].shape == (1, side, side, 1000)
    np.testing.assert_allclose(outputs["probabilities"].sum(axis=1), 1.0, rtol=1e-5)


def test_probabilities_are_the_softmax_of_the_averaged_scores(images):
    model = dense.fully_convolutional(keras_vgg.vgg("A", width_multiplier=NARROW, classes=7))
    outputs = forward(model, images(1, 320)[:, :, :288])  # 320 x 288: a 4 x 3 map
    assert outputs["score_map"].shape == (1, 4, 3, 7)
    averaged = outputs["score_map"].mean(axis=(1, 2))
    expected = np.exp(averaged) / np.exp(averaged).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(outputs["probabilities"], expected, rtol=1e-5)


def test_other_training_crops_give_their_own_fc1_kernel(images):
    model = keras_vgg.vgg("A", width_multiplier=NARROW, input_shape=(64, 64, 3), classes=5)
    fully_convolutional = dense.fully_convolutional(model)
    assert fully_convolutional.get_layer("fc1_conv").kernel_size == (2, 2)
    x = images(2, 64)
    np.testing.assert_allclose(forward(fully_convolutional, x)["probabilities"],
                               forward(model, x), atol=1e-6)
    assert forward(fully_convolutional, images(1, 96))["score_map"].shape == (
        1, 2, 2, 5)


@pytest.mark.full_size
def test_full_size_vgg16_at_224(images):
    model = keras_vgg.VGG16(weights=None)
    x = keras_vgg.preprocess_input(images(1, 224))
    outputs = forward(dense.fully_convolutional(model), x)
    assert np.abs(outputs["probabilities"] - forward(model, x)).max() < 1e-5


def test_a_model_without_its_head_is_refused():
    with pytest.raises(ValueError, match="include_top=False"):
        dense.fully_convolutional(keras_vgg.VGG16(weights=None, include_top=False,
                                                  width_multiplier=NARROW))

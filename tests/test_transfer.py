"""Appendix B's descriptors, against an independent computation."""

import numpy as np
import pytest
import tensorflow as tf
from conftest import NARROW, forward
from image_files import encode, photo, write

import keras_vgg
from keras_vgg import transfer


@pytest.fixture
def model():
    return keras_vgg.vgg("A", width_multiplier=NARROW, input_shape=(32, 32, 3), classes=10)


def odd_images():
    return [photo("coffee")[:37, :53], photo("astronaut")[:61, :45]]


def by_hand(model, image, scales, flip=True):
    """The descriptor written out: at a 32 px crop fc1 sees one feature-map cell, so the FC
    layers apply position by position to the conv trunk's map."""
    trunk = keras_vgg.vgg("A", width_multiplier=NARROW, include_top=False, classes=10)
    for layer in trunk.layers[1:]:
        layer.set_weights(model.get_layer(layer.name).get_weights())
    (w1, b1), (w2, b2) = model.get_layer("fc1").get_weights(), model.get_layer(
        "fc2").get_weights()
    vectors = []
    for q in scales:
        height, width = image.shape[:2]
        size = [round(height * q / min(height, width)), round(width * q / min(height, width))]
        x = tf.image.resize(image.astype("float32"), size, method="bilinear").numpy()
        views = [x, x[:, ::-1]] if flip else [x]
        per_view = []
        for view in views:
            cells = forward(trunk, keras_vgg.preprocess_input(view[None].copy()))[0]
            hidden = np.maximum(np.maximum(cells @ w1 + b1, 0) @ w2 + b2, 0)
            per_view.append(hidden.mean(axis=(0, 1)))
        vectors.append(np.mean(per_view, axis=0))
    vector = np.mean(vectors, axis=0)
    return vector / np.linalg.norm(vector)


def test_descriptors_are_the_papers(model):
    images = odd_images()
    ours = transfer.descriptors(model, images, test_scales=(32, 48))
    assert ours.shape == (2, 256) and ours.dtype == np.float32
    for row, image in zip(ours, images, strict=True):
        np.testing.assert_allclose(row, by_hand(model, image, (32, 48)), atol=1e-5)
        assert np.linalg.norm(row) == pytest.approx(1.0, abs=1e-5)


def test_shapes_for_layers_scales_and_combining(model):
    images = odd_images()
    assert transfer.descriptors(model, images, test_scales=(32, 40, 48),
                                combine="stack").shape == (2, 3 * 256)
    conv = transfer.descriptors(model, images, test_scales=(20,), layer="block5_conv2",
                                flip=False)
    assert conv.shape == (2, 32)
    assert transfer.descriptors(model, images[:1], test_scales=(33,), layer="fc1").shape == (
        1, 256)


def test_a_source_gives_the_same_descriptors_as_its_images(model, tmp_path):
    images = odd_images()  # PNG: decoded the same by every decoder
    for name, image in zip(("n01", "n02"), images, strict=True):
        write(str(tmp_path / name), {"image.png": encode(image, "PNG")})
    np.testing.assert_allclose(
        transfer.descriptors(model, f"folder:{tmp_path}", test_scales=(32,)),
        transfer.descriptors(model, images, test_scales=(32,)), atol=1e-6)


@pytest.mark.parametrize("options, images, message", [
    ({"layer": "fc3"}, None, r"no layer 'fc3' in 'vgg11'; the net can be cut at \[\'block1"),
    ({"test_scales": (24,)}, None, r"test scales \[24\] must be at least the crop 32"),
    ({"combine": "max"}, None, r"combine must be one of \('mean', 'stack'\)"),
    ({}, [], "no images to describe"),
    ({}, [np.zeros((40, 40), np.uint8)], r"images must be uint8 \[height, width, 3\] "
                                         r"arrays, got uint8 \(40, 40\)"),
    ({}, [np.zeros((40, 40, 3), np.float32)], "must be uint8.*got float32"),
])
def test_bad_requests_are_named(model, options, images, message):
    with pytest.raises(ValueError, match=message):
        transfer.descriptors(model, odd_images() if images is None else images,
                             **{"test_scales": (32,), **options})

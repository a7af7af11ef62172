"""The one dense path, against the plain model and a computation written out by hand."""

import numpy as np
import pytest
import tensorflow as tf
from conftest import NARROW, forward
from image_files import photo

import keras_vgg
from keras_vgg import inference, localisation

CROP = 32


@pytest.fixture(scope="module")
def model():
    import keras

    keras.utils.set_random_seed(3)
    return keras_vgg.vgg("A", width_multiplier=NARROW, input_shape=(CROP, CROP, 3), classes=10)


def softmax(scores):
    exponentials = np.exp(scores - scores.max(axis=-1, keepdims=True))
    return exponentials / exponentials.sum(axis=-1, keepdims=True)


def score_map_by_hand(model, image, q, head="predictions"):
    """`[h, w, classes]` scores: at a 32 px crop fc1 sees one feature-map cell, so the FC
    layers apply position by position to the conv trunk's map of the image rescaled to Q."""
    trunk = keras_vgg.vgg("A", width_multiplier=NARROW, include_top=False)
    for layer in trunk.layers[1:]:
        layer.set_weights(model.get_layer(layer.name).get_weights())
    height, width = image.shape[:2]
    size = [round(height * q / min(height, width)), round(width * q / min(height, width))]
    x = tf.image.resize(image.astype("float32"), size, method="bilinear").numpy()
    cells = forward(trunk, keras_vgg.preprocess_input(x[None].copy()))[0]
    (w1, b1), (w2, b2), (w3, b3) = (model.get_layer(name).get_weights()
                                    for name in ("fc1", "fc2", head))
    return np.maximum(np.maximum(cells @ w1 + b1, 0) @ w2 + b2, 0) @ w3 + b3


def test_at_the_crop_size_it_is_the_plain_model_and_its_mirror(model):
    image = photo("coffee")[100:100 + CROP, 200:200 + CROP]
    x = keras_vgg.preprocess_input(image[None].astype("float32"))
    plain = forward(model, x)[0]
    mirrored = forward(model, x[:, :, ::-1].copy())[0]
    assert not np.allclose(plain, mirrored, atol=1e-4)  # the mirror is a different view
    once = inference.DenseClassifier(model, test_scales=(CROP,), flip=False)
    np.testing.assert_allclose(once(image[None]).numpy()[0], plain, atol=1e-5)
    both = inference.DenseClassifier(model, test_scales=(CROP,))
    np.testing.assert_allclose(both(image[None]).numpy()[0], (plain + mirrored) / 2, atol=1e-5)


def test_a_larger_image_is_rescaled_scored_everywhere_and_averaged(model):
    image = photo("astronaut")[:75, :123]  # 75x123 -> 48x79 at Q=48: a 1x2 score map
    classify = inference.DenseClassifier(model, test_scales=(48,))
    outputs = classify.outputs(tf.constant(image[None]), 48)
    scores = score_map_by_hand(model, image, 48)
    mirrored = score_map_by_hand(model, image[:, ::-1], 48)
    assert scores.shape[:2] == (1, 2)
    np.testing.assert_allclose(outputs[inference.SCORE_MAP][0], scores, atol=1e-4)
    np.testing.assert_allclose(outputs[inference.MEAN][0], (
        scores.mean(axis=(0, 1)) + mirrored.mean(axis=(0, 1))) / 2, atol=1e-4)
    np.testing.assert_allclose(outputs[inference.PROBABILITIES][0], (
        softmax(scores.mean(axis=(0, 1))) + softmax(mirrored.mean(axis=(0, 1)))) / 2,
        atol=1e-5)
    np.testing.assert_allclose(outputs[inference.FACTOR], [48 / 75, 79 / 123], rtol=1e-6)


def test_several_scales_average_the_posteriors_of_each(model):
    image = tf.constant(photo("coffee")[None, :90, :70])
    classify = inference.DenseClassifier(model, test_scales=(32, 48, 64), flip=False)
    each = [classify.outputs(image, q)[inference.PROBABILITIES] for q in (32, 48, 64)]
    assert not np.allclose(each[0], each[2], atol=1e-4)
    np.testing.assert_allclose(classify(image), np.mean(each, axis=0), atol=1e-6)


def test_images_of_every_size_run_through_one_graph(model, monkeypatch):
    classify = inference.DenseClassifier(model, test_scales=(32, 48), flip=False)
    traced = []
    monkeypatch.setattr(classify, "outputs", lambda images, q: traced.append(q) or (
        inference.DenseClassifier.outputs(classify, images, q)))
    for height, width in ((90, 70), (40, 60), (64, 64)):
        image = photo("coffee")[None, :height, :width]
        np.testing.assert_allclose(classify(image), np.mean(
            [inference.DenseClassifier.outputs(classify, tf.constant(image), q)[
                inference.PROBABILITIES] for q in (32, 48)], axis=0), atol=1e-6)
    assert traced == [32, 48]  # traced once, for the first image


def test_a_box_head_gives_a_map_of_boxes(model):
    boxes = localisation.localisation_model(model, "scr")
    dense_boxes = inference.DenseClassifier(boxes, test_scales=(64,), flip=False,
                                            head=localisation.BOX_LAYER)
    image = photo("coffee")[:64, :80]
    outputs = dense_boxes.outputs(tf.constant(image[None]), 64)
    assert outputs[inference.SCORE_MAP].shape == (1, 2, 2, 4)
    np.testing.assert_allclose(outputs[inference.SCORE_MAP][0], score_map_by_hand(
        boxes, image, 64, head=localisation.BOX_LAYER), atol=1e-4)


@pytest.mark.parametrize("options, message", [
    ({"test_scales": ()}, "test_scales is empty"),
    ({"test_scales": (24,)}, r"test scales \[24\] must be at least the crop 32"),
    ({"preprocessing": "bgr"}, "unknown preprocessing 'bgr'"),
    ({"layer": "fc9"}, "no layer 'fc9'"),
])
def test_bad_options_are_named(model, options, message):
    with pytest.raises(ValueError, match=message):
        inference.DenseClassifier(model, **options)

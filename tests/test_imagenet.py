import importlib.resources

import keras
import numpy as np
import pytest

import keras_vgg
from keras_vgg import imagenet


def test_class_index_has_the_1000_ilsvrc_classes_in_tfds_order():
    classes = imagenet.class_index()
    assert sorted(classes) == list(range(1000))
    tfds_labels = (
        importlib.resources.files("tensorflow_datasets")
        .joinpath("datasets/imagenet2012/labels.txt")
        .read_text()
        .split()
    )
    assert [classes[i][0] for i in range(1000)] == tfds_labels
    assert classes[0] == ("n01440764", "tench")
    assert classes[999] == ("n15075141", "toilet_tissue")
    assert all(name for _, name in classes.values())


def test_decode_predictions_returns_the_best_classes_first():
    preds = np.full((2, 1000), 1e-4, dtype="float32")
    preds[0, [1, 2, 3]] = [0.5, 0.3, 0.2]
    preds[1, 999] = 0.9
    decoded = keras_vgg.decode_predictions(preds, top=3)
    assert [(synset, name) for synset, name, _ in decoded[0]] == [
        ("n01443537", "goldfish"), ("n01484850", "great_white_shark"),
        ("n01491361", "tiger_shark"),
    ]
    assert decoded[0][0][2] == pytest.approx(0.5)
    assert decoded[1][0][:2] == ("n15075141", "toilet_tissue")
    assert len(keras_vgg.decode_predictions(preds)[1]) == 5


@pytest.mark.parametrize("shape", [(1000,), (2, 10), (1, 1, 1000)])
def test_decode_predictions_rejects_other_shapes(shape):
    with pytest.raises(ValueError, match=r"\(samples, 1000\)"):
        keras_vgg.decode_predictions(np.zeros(shape))


def test_decode_predictions_rejects_bad_top():
    with pytest.raises(ValueError, match="top"):
        keras_vgg.decode_predictions(np.zeros((1, 1000)), top=0)


def test_default_preprocessing_is_keras_applications_caffe(images):
    x = images(2, 8)
    np.testing.assert_array_equal(
        keras_vgg.preprocess_input(x.copy()),
        keras.applications.vgg16.preprocess_input(x.copy()),
    )
    bgr_mean = np.array([103.939, 116.779, 123.68], dtype="float32")
    np.testing.assert_allclose(keras_vgg.preprocess_input(x.copy()), x[..., ::-1] - bgr_mean,
                               rtol=1e-6)


def test_torch_preprocessing_matches_torchvision_normalisation(images):
    x = images(2, 8)
    mean = np.array([0.485, 0.456, 0.406], dtype="float32")
    std = np.array([0.229, 0.224, 0.225], dtype="float32")
    np.testing.assert_allclose(
        keras_vgg.preprocess_input(x.copy(), mode="torch"), (x / 255 - mean) / std, rtol=1e-5
    )


def test_unknown_preprocessing_mode(images):
    with pytest.raises(ValueError, match="'bgr'"):
        keras_vgg.preprocess_input(images(1, 8), mode="bgr")

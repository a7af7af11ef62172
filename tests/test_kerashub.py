"""KerasHub VGG presets, both ways, against keras_hub itself (random weights, no download)."""

import json

import numpy as np
import pytest
from conftest import NARROW

import keras_vgg
from keras_vgg import kerashub

keras_hub = pytest.importorskip("keras_hub")

FILTERS = [4, 8, 16, 32, 32]  # Table 1's widths at NARROW
HIDDEN = 256  # fc1, fc2 at NARROW
CLASSES = 5


def hub_backbone(repeats=(2, 2, 3, 3, 3)):
    return keras_hub.models.VGGBackbone(stackwise_num_repeats=list(repeats),
                                        stackwise_num_filters=FILTERS,
                                        image_shape=(224, 224, 3))


def images(count=2):
    return np.random.default_rng(0).normal(0, 50, (count, 224, 224, 3)).astype("float32")


@pytest.mark.parametrize("repeats, config", [((1, 1, 2, 2, 2), "A"), ((2, 2, 3, 3, 3), "D"),
                                             ((2, 2, 4, 4, 4), "E")])
def test_a_backbone_preset_loads_as_its_config(repeats, config, tmp_path):
    backbone = hub_backbone(repeats)
    backbone.save_to_preset(str(tmp_path))
    assert kerashub.preset_config(tmp_path) == (keras_vgg.configs.get(config), NARROW)
    ours = keras_vgg.vgg(config, weights=str(tmp_path), width_multiplier=NARROW,
                         include_top=False)
    x = images()
    np.testing.assert_allclose(np.asarray(ours(x)), np.asarray(backbone(x)), rtol=1e-4,
                               atol=1e-4)


@pytest.mark.parametrize("pooling", ["avg", "flatten"])
def test_a_classifier_preset_loads_with_its_head(pooling, tmp_path):
    classifier = keras_hub.models.VGGImageClassifier(
        backbone=hub_backbone(), num_classes=CLASSES, pooling=pooling,
        pooling_hidden_dim=HIDDEN)
    classifier.save_to_preset(str(tmp_path))
    ours = keras_vgg.vgg("D", weights=str(tmp_path), width_multiplier=NARROW, classes=CLASSES,
                         classifier_activation=None)
    x = images()
    np.testing.assert_allclose(np.asarray(ours(x)), np.asarray(classifier(x)), rtol=1e-4,
                               atol=1e-4)


def test_our_weights_become_a_preset_keras_hub_loads(tmp_path):
    ours = keras_vgg.vgg("E", width_multiplier=NARROW)
    kerashub.save_preset(ours, str(tmp_path))
    backbone = keras_hub.models.VGGBackbone.from_preset(str(tmp_path))
    features = ours.get_layer("block5_pool").output
    import keras

    x = images(1)
    np.testing.assert_allclose(np.asarray(backbone(x)),
                               np.asarray(keras.Model(ours.input, features)(x)),
                               rtol=1e-4, atol=1e-4)


def test_what_kerashub_cannot_hold_is_refused(tmp_path):
    with pytest.raises(ValueError, match="KerasHub's VGGBackbone has 3x3 convs only"):
        kerashub.save_preset(keras_vgg.vgg("C", width_multiplier=NARROW), str(tmp_path / "c"))
    hub_backbone().save_to_preset(str(tmp_path / "bb"))
    with pytest.raises(ValueError, match="a backbone preset holds no fc1, fc2 or predictions"):
        keras_vgg.vgg("D", weights=str(tmp_path / "bb"), width_multiplier=NARROW)
    with pytest.raises(ValueError, match=r"layer 'block1_conv1' expects"):
        keras_vgg.vgg("D", weights=str(tmp_path / "bb"), width_multiplier=2 * NARROW,
                      include_top=False)
    config = json.loads((tmp_path / "bb" / "config.json").read_text())
    config["config"]["stackwise_num_repeats"] = [3, 3, 3, 3, 3]
    (tmp_path / "bb" / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"\[3, 3, 3, 3, 3\] convs per stage .* none of "
                                         r"Table 1's 3x3 networks"):
        kerashub.preset_config(tmp_path / "bb")


def test_a_backbone_preset_starts_a_net_with_a_new_head(tmp_path):
    backbone = hub_backbone((1, 1, 2, 2, 2))
    backbone.save_to_preset(str(tmp_path))
    model = keras_vgg.vgg("A", width_multiplier=NARROW, classes=CLASSES)
    fresh = kerashub.load_preset(model, tmp_path, new_layers=("fc1", "fc2", "predictions"))
    assert fresh == ["fc1", "fc2", "predictions"]
    features = keras_vgg.vgg("A", width_multiplier=NARROW, include_top=False)
    kerashub.load_preset(features, tmp_path)
    for layer in features.layers[1:]:
        for mine, theirs in zip(model.get_layer(layer.name).get_weights(),
                                layer.get_weights(), strict=True):
            np.testing.assert_array_equal(mine, theirs)


def test_a_classifier_preset_for_other_classes_keeps_its_hidden_layers(tmp_path):
    classifier = keras_hub.models.VGGImageClassifier(
        backbone=hub_backbone(), num_classes=CLASSES, pooling="flatten",
        pooling_hidden_dim=HIDDEN)
    classifier.save_to_preset(str(tmp_path))
    model = keras_vgg.vgg("D", width_multiplier=NARROW, classes=CLASSES + 2)
    assert kerashub.load_preset(model, tmp_path, new_layers=("predictions",)) == [
        "predictions"]
    with pytest.raises(ValueError, match="layer 'predictions' expects a kernel"):
        kerashub.load_preset(model, tmp_path)


def test_a_presets_image_converter_says_its_preprocessing(tmp_path):
    from keras_vgg import pretrained

    converter = keras_hub.layers.VGGImageConverter(
        image_size=(224, 224), scale=[1 / (255 * s) for s in (0.229, 0.224, 0.225)],
        offset=[-m / s for m, s in zip((0.485, 0.456, 0.406), (0.229, 0.224, 0.225),
                                       strict=True)])
    classifier = keras_hub.models.VGGImageClassifier(
        backbone=hub_backbone(), num_classes=CLASSES, pooling="flatten",
        pooling_hidden_dim=HIDDEN,
        preprocessor=keras_hub.models.VGGImageClassifierPreprocessor(converter))
    classifier.save_to_preset(str(tmp_path))
    source = pretrained.identify(tmp_path)
    assert (source.preprocessing, source.recorded, source.has_head) == ("torch", True, True)

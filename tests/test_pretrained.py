"""Weight sources and what each one's weights expect (`keras_vgg.pretrained`)."""

import json

import numpy as np
import pytest
from conftest import NARROW

import keras_vgg
from keras_vgg import configs, pretrained


def test_each_source_says_its_preprocessing_and_test_scales(tmp_path):
    (tmp_path / "vgg11.pth").write_bytes(b"")
    (tmp_path / "vgg11.safetensors").write_bytes(b"")
    (tmp_path / "mine.weights.h5").write_bytes(b"")
    imagenet = pretrained.identify("imagenet")
    assert (imagenet.format, imagenet.preprocessing, imagenet.recorded, imagenet.test_scale,
            imagenet.test_scales) == ("imagenet", "caffe", True, 384, (256, 384, 512))
    for name in ("vgg11.pth", "vgg11.safetensors"):
        torch = pretrained.identify(tmp_path / name)
        assert (torch.format, torch.preprocessing, torch.recorded, torch.test_scale) == (
            "torch", "torch", False, 256)
    keras_file = pretrained.identify(tmp_path / "mine.weights.h5")
    assert (keras_file.format, keras_file.preprocessing, keras_file.recorded) == (
        "keras", "caffe", False)


@pytest.mark.parametrize("location, message", [
    ("/no/such.pth", "no such weights file, preset or run directory"),
    ("folder", "a folder that is neither a KerasHub preset"),
    ("notes.txt", "unknown format"),
])
def test_what_is_no_weight_source_is_named(tmp_path, monkeypatch, location, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "folder").mkdir()
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match=message):
        pretrained.identify(location)


def test_a_preprocessing_is_refused_where_the_source_records_one_and_warned_elsewhere(
        tmp_path):
    (tmp_path / "vgg11.pth").write_bytes(b"")
    imagenet, torch = pretrained.identify("imagenet"), pretrained.identify(
        tmp_path / "vgg11.pth")
    assert pretrained.resolve_preprocessing(imagenet, None) == "caffe"
    assert pretrained.resolve_preprocessing(torch, "torch") == "torch"
    with pytest.raises(ValueError, match="preprocessing='torch' contradicts imagenet"):
        pretrained.resolve_preprocessing(imagenet, "torch")
    with pytest.warns(UserWarning, match="torch weights are usually trained with 'torch'; "
                                         "using 'caffe' as given"):
        assert pretrained.resolve_preprocessing(torch, "caffe") == "caffe"


def test_a_presets_image_converter_is_read_as_a_preprocessing_mode(tmp_path):
    keras_vgg.kerashub.save_preset(keras_vgg.vgg("A", width_multiplier=NARROW), tmp_path)
    source = pretrained.identify(tmp_path)
    assert (source.format, source.config, source.width_multiplier, source.has_head,
            source.recorded) == ("kerashub", configs.get("A"), NARROW, False, False)
    std, mean = np.array([0.229, 0.224, 0.225]), np.array([0.485, 0.456, 0.406])
    for mode, scale, offset in (("torch", 1 / (255 * std), -mean / std),
                                ("tf", [1 / 127.5] * 3, [-1.0] * 3)):
        (tmp_path / "image_converter.json").write_text(json.dumps(
            {"class_name": "VGGImageConverter",
             "config": {"scale": list(scale), "offset": list(offset)}}))
        source = pretrained.identify(tmp_path)
        assert (source.preprocessing, source.recorded) == (mode, True)

import dataclasses
import json

import numpy as np
import pytest

from keras_vgg import runs


def config(**overrides):
    return runs.RunConfig(**{"model_dir": "/tmp/run", "data": "folder:/t", "val_data": "folder:/v",
                             **overrides})


def test_defaults_are_the_papers_with_glorot_and_a_rate_for_the_batch():
    default = config()
    assert (default.config, default.epochs, default.batch_size, default.momentum,
            default.weight_decay, default.dropout, default.scale, default.crop_size) == (
        "D", 74, 256, 0.9, 5e-4, 0.5, (256, 256), 224)
    assert default.init == "glorot"
    assert default.learning_rate is None
    assert default.initial_learning_rate == pytest.approx(0.01)


@pytest.mark.parametrize("batch_size, init_from, expected", [
    (256, None, 0.01), (32, None, 0.00125), (4, None, 1.5625e-4), (512, None, 0.02),
    (256, "runs/d256", 1e-3), (32, "runs/d256", 1.25e-4)])
def test_the_learning_rate_scales_with_the_batch(batch_size, init_from, expected):
    run = config(batch_size=batch_size, init_from=init_from)
    assert run.initial_learning_rate == pytest.approx(expected)
    assert f"x {batch_size}/256" in run.learning_rate_origin()


def test_an_explicit_learning_rate_wins():
    run = config(batch_size=4, learning_rate=0.01, init_from="runs/d256")
    assert run.initial_learning_rate == 0.01
    assert run.learning_rate_origin() == "--learning_rate"


@pytest.mark.parametrize("scale, crop, test_scale, single, multi", [
    ((256, 256), 224, None, 256, (224, 256, 288)),    # Q = S; {S - 32, S, S + 32}
    ((384, 384), 224, None, 384, (352, 384, 416)),
    ((256, 512), 224, None, 384, (256, 384, 512)),    # jittered: 384; {256, 384, 512}
    ((72, 96), 64, None, 84, (72, 84, 96)),
    ((40, 40), 32, None, 40, (32, 40, 72)),           # S - 32 below the crop: the crop
    ((256, 256), 224, 300, 300, (224, 256, 288)),
])
def test_test_scales_follow_the_paper(scale, crop, test_scale, single, multi):
    run = config(scale=scale, crop_size=crop, test_scale=test_scale)
    assert run.test_scale_in_use == single
    assert run.test_scales == multi


@pytest.mark.parametrize("overrides, message", [
    ({"config": "F"}, "unknown VGG config 'F'"),
    ({"crop_size": 64, "scale": 48}, "crop_size=64 is larger than the training scale S=48"),
    ({"scale": "512,256"}, "S_min <= S_max"),
    ({"deterministic": True}, "deterministic needs a seed"),
    ({"warm_start": "a", "init_from": "b"}, "warm_start and init_from exclude each other"),
    ({"val_data": None}, "val_data is needed for folder: and tfrecord: training data"),
    ({"batch_size": 0}, "batch_size must be a positive integer, got 0"),
    ({"batch_size": True}, "batch_size must be a positive integer, got True"),
    ({"epochs": 2.5}, "epochs must be a positive integer, got 2.5"),
    ({"epochs": -1}, "epochs must be a positive integer"),
    ({"learning_rate": 0.0}, "learning_rate must be positive"),
    ({"init": "he"}, r"init='he': expected one of \('glorot', 'gaussian'\)"),
    ({"dropout": 1.0}, r"dropout must be in \[0, 1\)"),
    ({"test_scale": 100}, "test_scale=100 is smaller than crop_size=224"),
    ({"model_dir": None}, "model_dir is required"),
    ({"data": ""}, "data is required"),
    ({"crop_size": 0}, "crop_size must be a positive integer, got 0"),
    ({"width_multiplier": 0}, "width_multiplier must be positive, got 0"),
    ({"dropout": 1.5}, r"dropout must be in \[0, 1\), got 1.5"),
    ({"learning_rate": -0.01}, "learning_rate must be positive, got -0.01"),
    ({"weight_decay": -5e-4}, "weight_decay must be 0 or more, got -0.0005"),
    ({"momentum": 1.0}, r"momentum must be in \[0, 1\)"),
    ({"plateau_patience": -1}, "plateau_patience must be a positive integer, got -1"),
])
def test_settings_that_cannot_train_are_refused_with_their_name(overrides, message):
    with pytest.raises(ValueError, match=message):
        config(**overrides)


def test_paths_are_kept_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = runs.RunConfig(model_dir="runs/a", data="folder:images/train?classes=imagenet",
                         val_data="tfrecord:val-*", init_from="runs/s256")
    assert run.model_dir == str(tmp_path / "runs" / "a")
    assert run.data == f"folder:{tmp_path / 'images' / 'train'}?classes=imagenet"
    assert run.val_data == f"tfrecord:{tmp_path / 'val-*'}"
    assert run.init_from == str(tmp_path / "runs" / "s256")
    assert runs.RunConfig(model_dir=tmp_path, data="tfds:imagenet2012").data == (
        "tfds:imagenet2012")


def test_tfds_training_data_validates_on_its_validation_split():
    run = runs.RunConfig(model_dir="/tmp/r", data="tfds:imagenet2012?data_dir=/d&split=train")
    assert run.validation_source == ("tfds:imagenet2012?data_dir=%2Fd", "validation")


def test_run_json_round_trips_and_rebuilds_the_net(tmp_path):
    settings = config(model_dir=str(tmp_path), config="A", width_multiplier=1 / 16,
                      crop_size=32, scale="40,48", seed=3, learning_rate=0.5)
    run = runs.Run.of(settings, ["n01440764", "circle"])
    assert run.class_names == ("tench", "circle")
    path = run.save()
    document = json.loads(open(path).read())
    assert document["run_config"]["scale"] == [40, 48]
    assert document["classes"][0] == {"id": "n01440764", "name": "tench"}
    loaded = runs.load(tmp_path)
    assert loaded == dataclasses.replace(run, directory=str(tmp_path))
    assert runs.load(path) == loaded
    model = loaded.build_model(weights=False)
    assert model.input_shape == (None, 32, 32, 3) and model.output_shape == (None, 2)
    assert model.get_layer("block1_conv1").filters == 4
    with pytest.raises(ValueError, match="has no trained weights: .*final.weights.h5 is missing"):
        loaded.build_model()
    model.save_weights(loaded.weights_path)
    trained = loaded.build_model()
    for mine, theirs in zip(trained.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_array_equal(mine, theirs)


def test_what_is_not_a_run_is_named(tmp_path):
    with pytest.raises(ValueError, match="is not a training run: it has no run.json"):
        runs.load(tmp_path)
    (tmp_path / "run.json").write_text('{"something": "else"}')
    with pytest.raises(ValueError, match="is not a keras_vgg run description"):
        runs.load(tmp_path)
    (tmp_path / "run.json").write_text("{")
    with pytest.raises(ValueError, match="is not valid JSON"):
        runs.load(tmp_path)


def test_weights_file_takes_a_file_or_a_finished_run_directory(tmp_path):
    run = runs.Run.of(config(model_dir=str(tmp_path)), ["a", "b"])
    run.save()
    with pytest.raises(ValueError, match="init_from=.*: the run has not finished"):
        runs.weights_file(str(tmp_path), what="init_from")
    (tmp_path / "final.weights.h5").write_bytes(b"")
    assert runs.weights_file(str(tmp_path), what="init_from") == str(
        tmp_path / "final.weights.h5")
    (tmp_path / "x.weights.h5").write_bytes(b"")
    assert runs.weights_file(str(tmp_path / "x.weights.h5"), what="init_from") == str(
        tmp_path / "x.weights.h5")
    with pytest.raises(ValueError, match="init_from=/no/such: no such file or run directory"):
        runs.weights_file("/no/such", what="init_from")


@pytest.mark.parametrize("found, message", [
    (["a", "b"], r"labels 2 classes where 3 are expected \(missing \['c'\]\)"),
    (["a", "c", "b"], "labels 3 classes where 3 are expected, in another order"),
    (["a", "b", "c", "d"], r"\(extra \['d'\]\)"),
])
def test_a_source_with_other_classes_is_refused(found, message):
    runs.check_same_classes(["a", "b", "c"], ["a", "b", "c"], what="x")
    with pytest.raises(ValueError, match=message):
        runs.check_same_classes(["a", "b", "c"], found, what="x")

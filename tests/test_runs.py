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
    assert (default.config, default.epochs, default.momentum, default.weight_decay,
            default.dropout, default.scale, default.crop_size, default.preprocessing,
            default.width_multiplier) == ("D", 74, 0.9, 5e-4, 0.5, (256, 256), 224, "caffe",
                                          1.0)
    assert default.init == "glorot"
    assert default.learning_rate is None
    assert default.batch_size is None  # set from the training data when training starts
    with pytest.raises(ValueError, match="the default learning rate follows the batch size"):
        default.initial_learning_rate()
    assert dataclasses.replace(default, batch_size=256).initial_learning_rate() == (
        pytest.approx(0.01))


@pytest.mark.parametrize("images, batch_size", [
    (None, 256), (1_281_167, 256), (256 * 32, 256), (256 * 32 - 1, 128), (1500, 32),
    (160, 4), (63, 1), (20, 1), (1, 1)])
def test_the_default_batch_gives_small_data_sets_epochs_of_32_steps(images, batch_size):
    assert runs.default_batch_size(images) == batch_size
    if images and images >= 32:
        assert images // batch_size >= runs.MIN_STEPS_PER_EPOCH


@pytest.mark.parametrize("batch_size, init_from, new_layers, expected", [
    (256, None, (), 0.01), (32, None, (), 0.00125), (4, None, (), 1.5625e-4),
    (512, None, (), 0.02), (256, "imagenet", (), 1e-3), (32, "imagenet", (), 1.25e-4),
    (256, "imagenet", ("predictions",), 0.01), (1, "imagenet", ("predictions",), 0.01 / 256)])
def test_the_learning_rate_scales_with_the_batch(batch_size, init_from, new_layers, expected):
    run = config(batch_size=batch_size, init_from=init_from)
    assert run.initial_learning_rate(new_layers) == pytest.approx(expected)
    assert f"x {batch_size}/256" in run.learning_rate_origin(new_layers)
    assert runs.Run.of(run, ["a", "b"]).initial_learning_rate() == pytest.approx(
        run.initial_learning_rate())
    with_new = dataclasses.replace(runs.Run.of(run, ["a", "b"]), new_layers=new_layers)
    assert with_new.initial_learning_rate() == pytest.approx(expected)


def test_an_explicit_learning_rate_wins():
    run = config(batch_size=4, learning_rate=0.01, init_from="imagenet")
    assert run.initial_learning_rate() == 0.01
    assert run.learning_rate_origin() == "--learning_rate"


@pytest.mark.parametrize("given, stored", [
    ("D", "D"), ("d", "D"), (" D ", "D"), ("vgg16", "D"), ("VGG19", "E"), ("vgg16_bn", "D-BN"),
    ("a-lrn", "A-LRN"), ("b-5x5", "B-5x5")])
def test_config_names_are_stored_as_the_papers(given, stored):
    assert config(config=given).config == stored


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
    ({"warm_start": "a", "init_from": "imagenet"}, "warm_start and init_from exclude each "
                                                   "other"),
    ({"val_data": None}, "val_data is needed for folder: and tfrecord: training data"),
    ({"batch_size": 0}, "batch_size must be a positive integer, got 0"),
    ({"batch_size": True}, "batch_size must be an integer or null, got True"),
    ({"epochs": 2.5}, "epochs must be an integer, got 2.5"),
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
    ({"plateau_min_steps": -1}, "plateau_min_steps must be 0 or more, got -1"),
    ({"log_every": 0}, "log_every must be a positive integer, got 0"),
    ({"freeze_convs": True}, "freeze_convs keeps the conv layers of --init_from: give one"),
])
def test_settings_that_cannot_train_are_refused_with_their_name(overrides, message):
    with pytest.raises(ValueError, match=message):
        config(**overrides)


def saved_run(directory, **overrides) -> runs.Run:
    run = runs.Run.of(config(model_dir=str(directory), **overrides), ["a", "b"])
    run.save()
    return run


def test_paths_are_kept_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    saved_run(tmp_path / "runs" / "s256")
    run = runs.RunConfig(model_dir="runs/a", data="folder:images/train?classes=imagenet",
                         val_data="tfrecord:val-*", init_from="runs/s256")
    assert run.model_dir == str(tmp_path / "runs" / "a")
    assert run.data == f"folder:{tmp_path / 'images' / 'train'}?classes=imagenet"
    assert run.val_data == f"tfrecord:{tmp_path / 'val-*'}"
    assert run.init_from == str(tmp_path / "runs" / "s256")
    assert runs.RunConfig(model_dir=tmp_path, data="tfds:imagenet2012").data == (
        "tfds:imagenet2012")
    assert config(init_from="imagenet").init_from == "imagenet"


def test_a_run_started_from_a_run_takes_its_network_crop_scale_and_preprocessing(tmp_path):
    saved_run(tmp_path / "first", config="vgg11", width_multiplier=0.125, crop_size=64,
              scale=(72, 96), preprocessing="tf")
    tuned = config(init_from=str(tmp_path / "first"), data="folder:/new")
    assert (tuned.config, tuned.width_multiplier, tuned.crop_size, tuned.scale,
            tuned.preprocessing) == ("A", 0.125, 64, (72, 96), "tf")
    assert config(init_from=str(tmp_path / "first"), scale=96).scale == (96, 96)
    runs.check_starting_point(tuned)
    for field, value in (("config", "D"), ("width_multiplier", 0.25),
                         ("preprocessing", "caffe")):
        with pytest.raises(ValueError, match=f"{field}=.* contradicts init_from=.*first, whose "
                                             f"{field} is"):
            runs.check_starting_point(config(init_from=str(tmp_path / "first"),
                                             **{field: value}))


def test_a_run_started_from_weights_takes_their_preprocessing(tmp_path):
    (tmp_path / "vgg11.pth").write_bytes(b"")
    (tmp_path / "a.weights.h5").write_bytes(b"")
    assert config(init_from="imagenet").preprocessing == "caffe"
    assert config(init_from=str(tmp_path / "vgg11.pth"), config="A").preprocessing == "torch"
    assert config(init_from=str(tmp_path / "a.weights.h5")).preprocessing == "caffe"
    with pytest.raises(ValueError, match="preprocessing='torch' contradicts imagenet, whose "
                                         "weights were trained with 'caffe'"):
        runs.check_starting_point(config(init_from="imagenet", preprocessing="torch"))
    with pytest.warns(UserWarning, match="torch weights are usually trained with 'torch'"):
        runs.check_starting_point(config(init_from=str(tmp_path / "vgg11.pth"), config="A",
                                         preprocessing="caffe"))
    with pytest.raises(ValueError, match="weights='imagenet' exists for configs"):
        runs.check_starting_point(config(init_from="imagenet", config="A"))
    with pytest.raises(ValueError, match="init_from: /no/such: no such weights file, preset "
                                         "or run directory"):
        config(init_from="/no/such")


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
    tuned = dataclasses.replace(loaded, new_layers=("fc2", "predictions"))
    tuned.save()
    assert runs.load(tmp_path).new_layers == ("fc2", "predictions")
    document["new_layers"] = "predictions"
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "run.json").write_text(json.dumps(document))
    with pytest.raises(ValueError, match="'new_layers' must be a list of layer names"):
        runs.load(tmp_path / "bad")
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
    saved_run(tmp_path)
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

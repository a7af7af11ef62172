"""Hostile and careless input (issue 25): runs that must not lose or mix data, files that
must give one clear error rather than a traceback, and reads that must stay within bounds.
The crafted files come from `crafted.py`."""

import json
import os
import re
import shutil
import textwrap

import crafted
import keras
import numpy as np
import pytest
from absl import flags
from conftest import NARROW, run_command, run_python, tiny_run_config
from image_files import imagenet_folder

import keras_vgg
from keras_vgg import checkpoints, data, files, runs, serving, sources, tasks, training, weights
from keras_vgg.cli import evaluate, export, train, transfer
from keras_vgg.requires_tensorflow import tf


def tiny_classifier(classes=10):
    return keras_vgg.vgg("A", width_multiplier=NARROW, input_shape=(32, 32, 3),
                         classes=classes, dropout=0.0)


# --- Runs that lose or corrupt data --------------------------------------------------------

@pytest.mark.slow
def test_a_model_dir_in_use_is_refused_and_a_killed_runs_lock_does_not_block(
        demo_images, tmp_path):
    config = tiny_run_config(tmp_path / "run", demo_images)
    os.makedirs(config.model_dir)
    with files.locked(config.model_dir, what="model_dir"):
        with pytest.raises(training.RunError,
                           match=rf"model_dir {config.model_dir} is in use by another run "
                                 rf"\(process {os.getpid()} on "):
            training.train(config, verbose=0)
    assert not os.path.exists(os.path.join(config.model_dir, runs.RUN_FILE))
    # What a killed run leaves: the file, with nobody holding it.
    with open(os.path.join(config.model_dir, files.LOCK_FILE), "w") as lock:
        lock.write("process 1 on elsewhere, since 2026-01-01 00:00:00")
    assert training.train(config, verbose=0).epochs == 1


def _interrupted(config, class_ids, *, settings_in: tuple[str, ...]):
    """A model_dir as a killed run leaves it after epoch 1, its settings in `settings_in`
    ("run.json": the directory's, "checkpoint": the checkpoint's copy)."""
    run = runs.Run.of(config, class_ids)
    checkpoint = os.path.join(checkpoints.directory(config.model_dir), "epoch-1")
    os.makedirs(checkpoint)
    checkpoints.RunState(epoch=1).save(os.path.join(checkpoint, checkpoints.STATE_FILE))
    if "run.json" in settings_in:
        run.save(config.model_dir)
    if "checkpoint" in settings_in:
        run.save(checkpoint)


def test_a_checkpoint_keeps_its_settings_when_run_json_is_lost(demo_images, tmp_path):
    import demo_data

    config = tiny_run_config(tmp_path / "kept", demo_images)
    _interrupted(config, demo_data.CLASSES, settings_in=("checkpoint",))
    other = tiny_run_config(tmp_path / "kept", demo_images, momentum=0.5, learning_rate=0.5)
    with pytest.raises(training.RunError, match=r"holds a run with other settings "
                                                r"\(learning_rate None -> 0.5, momentum 0.9 "
                                                r"-> 0.5\)"):
        training.train(other, verbose=0)

    config = tiny_run_config(tmp_path / "lost", demo_images)
    _interrupted(config, demo_data.CLASSES, settings_in=())
    with pytest.raises(training.RunError, match=r"holds a checkpoint \(.*epoch-1\) without "
                                                r"the settings it was trained with .* delete "):
        training.train(config, verbose=0)


@pytest.fixture(params=["nan", "external link"])
def bad_weights(request, tmp_path):
    """Writes a damaged copy of a model's weights: `make(model, path)`."""
    def make(model, path):
        if request.param == "nan":
            return crafted.nan_weights(model, path), "NaN or infinite values"
        return (crafted.external_link_weights(model, path, tmp_path / "elsewhere.h5"),
                "ExternalLink")
    return make


@pytest.mark.parametrize("task", ["classification", "localisation"])
def test_a_runs_final_weights_go_through_the_checked_loader(tmp_path, bad_weights, task):
    import demo_data

    config = runs.RunConfig(model_dir=str(tmp_path / "run"), config="A", data="folder:x",
                            val_data="folder:y", width_multiplier=NARROW, crop_size=32,
                            scale=(40, 48), task=task)
    run = runs.Run.of(config, demo_data.CLASSES)
    path, message = bad_weights(run.build_model(weights=False), tmp_path / "final.weights.h5")
    with pytest.raises(ValueError, match=message):
        run.build_model(weights=path)


def saved_checkpoint(model_dir):
    """A checkpoint of epoch 2 of a compiled tiny classifier in `model_dir`; its path."""
    import demo_data

    model = tiny_classifier()
    tasks.compile_for_training(model, learning_rate=0.01, momentum=0.9)
    model.optimizer.build(model.trainable_variables)
    run = runs.Run.of(tiny_run_config(model_dir, "x"), demo_data.CLASSES)
    return checkpoints.save(str(model_dir), model, run, checkpoints.RunState(epoch=2)), model


def test_a_checkpoint_goes_through_the_checked_loader(tmp_path, bad_weights):
    checkpoint, model = saved_checkpoint(tmp_path)
    bad_weights(model, os.path.join(checkpoint, checkpoints.WEIGHTS_FILE))
    with pytest.raises(ValueError, match=r"the run cannot resume: .* Delete .*epoch-2 to train"):
        checkpoints.restore(str(tmp_path), model, checkpoints.RunState())


def test_init_from_and_warm_start_go_through_the_checked_loader(tmp_path, bad_weights):
    path, message = bad_weights(tiny_classifier(), tmp_path / "a.weights.h5")
    with pytest.raises(ValueError, match=message):
        weights.load_weights(tiny_classifier(), path, new_layers=("predictions",))
    with pytest.raises(ValueError, match=message):
        weights.warm_start_from_config_a(
            keras_vgg.vgg("D", width_multiplier=NARROW, input_shape=(32, 32, 3), classes=10),
            path)


# --- Crashes ------------------------------------------------------------------------------

@pytest.mark.parametrize("damage", ["crc", "truncated"])
def test_a_damaged_tfrecord_is_named_with_the_records_offset(tmp_path, photographs, damage):
    image = (photographs / "coffee.JPEG").read_bytes()
    path = tmp_path / "train-00000-of-00001"
    offset = crafted.tfrecord(path, [crafted.example(image, 1)] * 3, damage=damage)
    found = sources.damaged_record(str(tmp_path / "train-*"))
    assert found[:2] == (str(path), offset)
    with pytest.raises(ValueError, match=rf"TFRecord file {path} is damaged at the record "
                                         rf"starting at byte {offset} \("):
        with sources.naming_damaged_records("folder:elsewhere", f"tfrecord:{tmp_path}/train-*"):
            for _ in tf.data.TFRecordDataset(str(path)):
                pass


@pytest.mark.slow
def test_training_on_a_damaged_tfrecord_stops_in_one_line(demo_images, tmp_path,
                                                          photographs):
    image = (photographs / "coffee.JPEG").read_bytes()
    path = tmp_path / "train.tfrecord"
    offset = crafted.tfrecord(path, [crafted.example(image, label) for label in (1, 2, 1, 2)],
                              damage="crc")
    crafted.tfrecord(tmp_path / "val.tfrecord", [crafted.example(image, 1)] * 2)
    config = tiny_run_config(tmp_path / "run", demo_images,
                             data=f"tfrecord:{path}?classes=10", batch_size=2,
                             val_data=f"tfrecord:{tmp_path}/val.tfrecord?classes=10")
    with pytest.raises(ValueError, match=rf"{path} is damaged at the record starting at "
                                         rf"byte {offset}"):
        training.train(config, verbose=0)


def test_a_tfrecord_record_without_an_image_is_skipped_and_named(tmp_path, photographs, capfd):
    image = (photographs / "coffee.JPEG").read_bytes()
    path = tmp_path / "val.tfrecord"
    crafted.tfrecord(path, [crafted.example(image, 1), crafted.example(None, 2),
                            crafted.example(image, 3)])
    batches = list(data.eval_dataset(f"tfrecord:{path}?classes=10", view="center",
                                     test_scale=40, crop_size=32, batch_size=4))
    assert [int(label) for label in batches[0][1]] == [0, 2]
    assert f"keras_vgg: skipped {path}:1: unreadable or undecodable file" in capfd.readouterr().err


def test_a_damaged_checkpoint_says_what_to_delete(tmp_path):
    checkpoint, model = saved_checkpoint(tmp_path)
    state = os.path.join(checkpoint, checkpoints.STATE_FILE)
    for text, message in (("{not json", rf"run state {state} is not valid JSON"),
                          ('{"epoch": 2, "learning_rate_drops": -3}',
                           rf"run state {state}: learning_rate_drops='-3' is not a value")):
        with open(state, "w") as file:
            file.write(text)
        with pytest.raises(ValueError, match=rf"the run cannot resume: {message}.* Delete "
                                             rf"{checkpoint} to train it again"):
            checkpoints.saved_epoch(str(tmp_path))
    checkpoints.RunState(epoch=2).save(state)

    # A truncated weights file: one line naming it and what to delete.
    weights_path = os.path.join(checkpoint, checkpoints.WEIGHTS_FILE)
    with open(weights_path, "r+b") as file:
        file.truncate(os.path.getsize(weights_path) // 2)
    with pytest.raises(ValueError, match=r"the run cannot resume: cannot read checkpoint .*"
                                         rf"Delete {checkpoint} to train it again"):
        checkpoints.restore(str(tmp_path), model, checkpoints.RunState())


@pytest.mark.parametrize("change, field", [
    ("config_int", "config must be a string or null, got 16"),
    ("config_list", r"config must be a string or null, got \['D'\]"),
    ("momentum_string", "momentum must be a finite number, got '0.9'"),
    ("no_run_config", "'run_config' is missing"),
    ("no_class_name", "'classes' must be a list of"),
    ("deep", "nests too deeply"),
    ("not_utf8", "is not UTF-8 text"),
    ("huge_int", "is not valid JSON: Exceeds the limit"),
])
def test_a_tampered_run_json_is_named_with_its_field(tiny_run, tmp_path, change, field, capsys):
    copy = tmp_path / "run"
    shutil.copytree(tiny_run.directory, copy)
    crafted.tampered_run_json(copy / runs.RUN_FILE, change)
    with pytest.raises(ValueError, match=rf"{copy / runs.RUN_FILE}.*{field}"):
        runs.load(copy)
    assert run_command(export, f"--model_dir={copy}", f"--export_base={tmp_path}/out") == 1
    assert capsys.readouterr().err.count("\n") == 1


@pytest.mark.parametrize("encrypted, method", [(True, None), (False, 99)])
def test_keras_archives_zipfile_cannot_open_are_refused_by_name(tmp_path, encrypted, method):
    path = crafted.keras_archive_with_flags(tmp_path / "x.keras", encrypted=encrypted,
                                            method=method)
    with pytest.raises(ValueError, match=rf"cannot read weights file '{path}'"):
        weights.load_weights(tiny_classifier(), path)


def _torchvision_tensors(model):
    """A torchvision-style state dict of `model` (float32 numpy), to write in any format."""
    state = {}
    convs = [layer for layer in model.layers if layer.weights and layer.name.startswith("block")]
    for index, layer in enumerate(convs):
        kernel, bias = layer.get_weights()
        state[f"features.{2 * index}.weight"] = kernel.transpose(3, 2, 0, 1)
        state[f"features.{2 * index}.bias"] = bias
    for module, name in zip(("classifier.0", "classifier.3", "classifier.6"),
                            ("fc1", "fc2", "predictions"), strict=True):
        kernel, bias = model.get_layer(name).get_weights()
        state[f"{module}.weight"], state[f"{module}.bias"] = kernel.T.copy(), bias
    return state


def test_bfloat16_safetensors_load_as_bfloat16_pth_does(tmp_path):
    import torch

    state = {key: torch.from_numpy(np.ascontiguousarray(value)).bfloat16()
             for key, value in _torchvision_tensors(tiny_classifier()).items()}
    path = crafted.safetensors_file(tmp_path / "bf16.safetensors", {
        key: ("BF16", tuple(value.shape), value.view(torch.int16).numpy().tobytes())
        for key, value in state.items()})
    torch.save(state, tmp_path / "bf16.pth")
    from_safetensors, from_pth = tiny_classifier(), tiny_classifier()
    weights.load_weights(from_safetensors, path)
    weights.load_weights(from_pth, tmp_path / "bf16.pth")
    for left, right in zip(from_safetensors.weights, from_pth.weights, strict=True):
        np.testing.assert_array_equal(left.numpy(), right.numpy())


@pytest.mark.parametrize("tensor, dtype, shape, message", [
    ("features.0.weight", "F8_E4M3", None, r"tensor 'features.0.weight' is stored as F8_E4M3"),
    ("classifier.6.weight", "F32", (), r"tensor classifier.6.weight .* has shape \(\)"),
    ("classifier.6.weight", "F32", (0, 4), r"tensor classifier.6.weight .* has shape \(0, 4\)"),
])
def test_safetensors_tensors_that_cannot_load_are_named(tmp_path, tensor, dtype, shape,
                                                        message):
    state = _torchvision_tensors(tiny_classifier())
    if shape is not None:
        state[tensor] = np.zeros(shape, np.float32)
    tensors = {key: ("F32", value.shape, np.ascontiguousarray(value, "<f4").tobytes())
               for key, value in state.items()}
    if dtype == "F8_E4M3":
        tensors[tensor] = (dtype, state[tensor].shape, b"\0" * state[tensor].size)
    path = crafted.safetensors_file(tmp_path / "x.safetensors", tensors)
    with pytest.raises(ValueError, match=rf"{path}: {message}"):
        weights.load_weights(tiny_classifier(), path)


@pytest.mark.parametrize("kind, message", [
    ("float8", "is stored as torch.float8_e4m3fn"),
    ("sparse", "is sparse_coo"),
    ("quantised", "is quantised"),
])
def test_torch_tensors_numpy_cannot_hold_are_named(tmp_path, kind, message):
    import torch

    state = {key: torch.from_numpy(np.ascontiguousarray(value))
             for key, value in _torchvision_tensors(tiny_classifier()).items()}
    first = "features.0.weight"
    state[first] = {"float8": lambda t: t.to(torch.float8_e4m3fn),
                    "sparse": lambda t: t.to_sparse(),
                    "quantised": lambda t: torch.quantize_per_tensor(t, 0.1, 0, torch.qint8),
                    }[kind](state[first])
    path = tmp_path / "x.pth"
    torch.save(state, path)
    with pytest.raises(ValueError, match=rf"{path}: tensor '{first}' {message}"):
        weights.load_weights(tiny_classifier(), path)


def test_export_onto_a_full_disk_stops_in_one_line(tiny_run, tmp_path, monkeypatch, capsys):
    def full_disk(*args, **kwargs):  # what TensorFlow's writer raises on a full disk
        raise tf.errors.ResourceExhaustedError(None, None, "No space left on device")

    # ExportArchive() makes an archive of the backend's class.
    monkeypatch.setattr(type(keras.export.ExportArchive()), "write_out", full_disk)
    assert run_command(export, f"--model_dir={tiny_run.directory}",
                       f"--export_base={tmp_path}/out") == 1
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "could not be written (No space left on device)" in error
    assert os.listdir(tmp_path / "out" / "tiny") == []  # nothing half-written kept


def test_flags_out_of_range_are_refused_in_one_line(tiny_run, demo_images, tmp_path, capsys):
    images = [f"--data=folder:{demo_images}/train", f"--val_data=folder:{demo_images}/val"]
    for flag, message in (("--width_multiplier=inf", "width_multiplier must be a finite "
                                                     "number or null, got inf"),
                          ("--learning_rate=inf", "learning_rate must be a finite number or "
                                                  "null, got inf"),
                          (f"--seed={2**32}", r"seed must be in \[0, 2\*\*32\)")):
        assert run_command(train, *images, f"--model_dir={tmp_path}/run", flag) == 1
        error = capsys.readouterr().err
        assert error.count("\n") == 1
        assert re.search(message, error), error
    assert run_command(evaluate, "--config=A", "--width_multiplier=inf",
                       f"--weights={tiny_run.weights_path}", "--crop_size=32",
                       f"--data=folder:{demo_images}/val") == 1
    assert "width_multiplier` must be positive and at most 16" in capsys.readouterr().err

    transfer_flags = [f"--model_dir={tiny_run.directory}", *images]
    assert run_command(transfer, *transfer_flags, "--output_dir=/etc/passwd") == 1
    assert ("--output_dir '/etc/passwd' is not a directory"
            in capsys.readouterr().err)
    for value in ("-1", "abc"):
        with pytest.raises(flags.IllegalFlagValueError,
                           match="c_values.*every C must be a positive number"):
            run_command(transfer, *transfer_flags, f"--c_values={value}")


def test_source_options_name_themselves(tmp_path, photographs):
    crafted.tfrecord(tmp_path / "x.tfrecord", [crafted.example(b"", 1)])
    with pytest.raises(ValueError, match="option label_offset='abc' must be an integer"):
        sources.open_source(f"tfrecord:{tmp_path}/x.tfrecord?label_offset=abc")
    with pytest.raises(ValueError, match="option classes='0' must be an integer of at least 1"):
        sources.open_source(f"tfrecord:{tmp_path}/x.tfrecord?classes=0")


def test_a_malformed_keras_hub_preset_or_serving_options_file_is_named(tmp_path):
    from keras_vgg import kerashub

    preset = tmp_path / "preset"
    preset.mkdir()
    for text, message in (("[1, 2]", "is not a KerasHub preset config"),
                          (json.dumps({"class_name": kerashub.BACKBONE_CLASS, "config": {
                              "stackwise_num_repeats": "abc"}}), "must be lists of positive"),
                          ("{", "is not valid JSON")):
        (preset / "config.json").write_text(text)
        with pytest.raises(ValueError, match=message):
            kerashub.preset_config(preset)

    version = tmp_path / "export" / "1"
    (version / "assets.extra").mkdir(parents=True)
    options = version / serving.OPTIONS_FILE
    for document, message in (({"test_scale": "big"}, "test_scale must be a positive integer"),
                              ({"rogue": 1}, "is damaged: expected an object of"),
                              ([], "is damaged: expected an object of")):
        options.write_text(json.dumps(document))
        with pytest.raises(ValueError, match=message):
            serving.read_options(str(version))


def test_an_unknown_tfds_name_is_said_in_one_line():
    with pytest.raises(ValueError) as raised:
        sources.open_source("tfds:no_such_dataset_here")
    assert str(raised.value).startswith("tfds:no_such_dataset_here: TFDS has no data set")
    assert len(str(raised.value)) < 300


# --- Memory and logs ----------------------------------------------------------------------

@pytest.mark.slow
def test_checkpoints_are_read_lazily(tmp_path):
    """An unused 3 GiB tensor in a .safetensors file, and 256 MiB in a .pth, cost nothing
    (read whole, either would cost more than the bound)."""
    import torch

    big = crafted.safetensors_file(tmp_path / "big.safetensors", {
        "features.0.bias": ("F32", (4,), np.ones(4, "<f4").tobytes())}, sparse_tail=3 << 30)
    torch.save({"features.0.bias": torch.ones(4), "extra": torch.zeros(1 << 26)},
               tmp_path / "big.pth")
    result = run_python(textwrap.dedent(f"""
        import resource
        from keras_vgg import weights
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        for path in ("{big}", "{tmp_path}/big.pth"):
            arrays = weights.read_torch_file(path)
            assert float(arrays["features.0.bias"].sum()) == 4.0
        grew = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
        print("grew_kib", grew)
    """))
    assert result.returncode == 0, result.stderr
    grew = int(result.stdout.split("grew_kib")[1])
    assert grew < 128 * 1024, f"reading grew the peak memory by {grew} KiB"


def test_a_file_too_large_for_an_image_is_skipped_unread(tmp_path, photographs, capfd):
    imagenet_folder(str(tmp_path / "val"), ["cat", "dog"], per_class=1)
    huge = crafted.huge_sparse_file(tmp_path / "val" / "cat" / "huge.JPEG",
                                    sources.MAX_FILE_BYTES + 1)
    batches = list(data.eval_dataset(f"folder:{tmp_path}/val", view="center",
                                     test_scale=40, crop_size=32, batch_size=4))
    assert sum(len(labels) for _, labels in batches) == 2
    assert (f"keras_vgg: skipped {huge}: a file of {sources.MAX_FILE_BYTES + 1} bytes, larger "
            "than any image" in capfd.readouterr().err)


def test_a_file_name_cannot_forge_a_log_line(tmp_path, capfd):
    imagenet_folder(str(tmp_path / "val"), ["cat", "dog"], per_class=1)
    forged = tmp_path / "val" / "cat" / "x.JPEG\nkeras_vgg: skipped fake.JPEG: all fine"
    forged.write_bytes(b"not an image")
    list(data.eval_dataset(f"folder:{tmp_path}/val", view="center", test_scale=40,
                           crop_size=32, batch_size=4))
    lines = capfd.readouterr().err.splitlines()
    assert not any(line.startswith("keras_vgg: skipped fake.JPEG") for line in lines)
    assert any("x.JPEG\\nkeras_vgg: skipped fake.JPEG: all fine: unreadable" in line
               for line in lines), lines

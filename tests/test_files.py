"""Files a run writes: whole or not at all, with a clear error when the disk is full."""

import os
from collections import namedtuple

import keras
import numpy as np
import pytest
from conftest import NARROW, tmpfs

import keras_vgg
from keras_vgg import files


def small_model():
    return keras_vgg.vgg("A", width_multiplier=NARROW, input_shape=(32, 32, 3), classes=4)


def test_weights_are_written_whole_under_their_name(tmp_path):
    model = small_model()
    path = str(tmp_path / "w.weights.h5")
    files.save_weights(model, path)
    assert os.listdir(tmp_path) == ["w.weights.h5"]
    other = small_model()
    other.load_weights(path)
    for mine, theirs in zip(model.get_weights(), other.get_weights(), strict=True):
        np.testing.assert_array_equal(mine, theirs)


def test_too_little_free_space_stops_before_writing(tmp_path, monkeypatch):
    model = small_model()
    path = str(tmp_path / "w.weights.h5")
    files.save_weights(model, path)
    before = open(path, "rb").read()
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(files.shutil, "disk_usage", lambda _: usage(10**9, 10**9, 1000))
    with pytest.raises(files.WriteFailed, match=r"no space left for .*w.weights.h5: it needs "
                                                r"about [0-9.]+ MiB and .* has 0.0 MiB free"):
        files.save_weights(keras_vgg.vgg("A", width_multiplier=NARROW, input_shape=(32, 32, 3),
                                         classes=4), path)
    assert open(path, "rb").read() == before
    assert os.listdir(tmp_path) == ["w.weights.h5"]


def test_the_estimate_covers_the_file(tmp_path):
    model = small_model()
    model.compile(optimizer=keras.optimizers.SGD(momentum=0.9), loss="mse")
    model.optimizer.build(model.trainable_variables)
    files.save_weights(model, str(tmp_path / "w.weights.h5"))
    written = os.path.getsize(tmp_path / "w.weights.h5")
    assert written <= files.weights_bytes(model) + files.SPACE_MARGIN_BYTES
    assert files.weights_bytes(model) > 0.9 * written  # the optimizer's slots are counted


def test_json_is_replaced_whole(tmp_path, monkeypatch):
    path = str(tmp_path / "state.json")
    files.write_json(path, {"epoch": 1})

    def failing_dump(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files.json, "dumps", lambda document, indent: "{" * 10)
    monkeypatch.setattr(os, "replace", failing_dump)
    with pytest.raises(files.WriteFailed, match="the disk is full"):
        files.write_json(path, {"epoch": 2})
    assert open(path).read() == '{\n "epoch": 1\n}'
    assert os.listdir(tmp_path) == ["state.json"]


def test_a_directory_that_cannot_be_written_is_named(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match=r"model_dir '.*file/run' cannot be created"):
        files.check_writable(str(tmp_path / "file" / "run"), what="model_dir")
    with pytest.raises(ValueError, match=r"model_dir '.*file' is not a directory"):
        files.check_writable(str(tmp_path / "file"), what="model_dir")
    with tmpfs(tmp_path / "read_only", "ro,size=1m") as mount:
        with pytest.raises(ValueError, match=r"model_dir '.*read_only' is not writable"):
            files.check_writable(str(mount), what="model_dir")

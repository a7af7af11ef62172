import errno
import os

import numpy as np
import pytest
from conftest import NARROW, tiny_run_config

import keras_vgg
from keras_vgg import callbacks, checkpoints, files, runs, tasks

CLASSES = ("a", "b", "c", "d")


def compiled_model():
    """Config A at 1/16 width with dropout, so that it has seed generators to restore."""
    model = keras_vgg.vgg("A", width_multiplier=NARROW, input_shape=(32, 32, 3),
                          classes=len(CLASSES), dropout=0.5)
    tasks.compile_for_training(model, learning_rate=1e-3, momentum=0.9)
    return model


def described(model_dir):
    return runs.Run.of(tiny_run_config(model_dir, "x", batch_size=8), CLASSES)


def batches(count=16):
    rng = np.random.default_rng(0)
    return (rng.normal(0, 50, (count, 32, 32, 3)).astype("float32"),
            rng.integers(0, len(CLASSES), count).astype("int32"))


def test_a_checkpoint_restores_weights_optimizer_state_and_generators(tmp_path):
    x, y = batches()
    model = compiled_model()
    state = checkpoints.RunState(learning_rate_drops=1, best_val_score=0.5)
    run = described(tmp_path)
    model.fit(x, y, batch_size=8, epochs=2, verbose=0,
              callbacks=[callbacks.Checkpoint(str(tmp_path), run, state)])
    model.optimizer.learning_rate = 1e-4  # as the schedule sets it before the checkpoint
    path = checkpoints.save(str(tmp_path), model, run, state)
    assert os.listdir(checkpoints.directory(str(tmp_path))) == ["epoch-2"]  # epoch 1's gone
    assert sorted(os.listdir(path)) == [checkpoints.WEIGHTS_FILE, runs.RUN_FILE,
                                        checkpoints.STATE_FILE]
    assert runs.load(path).config == run.config
    assert state.random_states  # the dropout layers' generators

    resumed, resumed_state = compiled_model(), checkpoints.RunState()
    assert checkpoints.restore(str(tmp_path), resumed, resumed_state) == path
    assert resumed_state.epoch == 2
    assert resumed_state == state
    for mine, saved in zip(resumed.weights, model.weights, strict=True):
        np.testing.assert_array_equal(mine.numpy(), saved.numpy())
    for mine, saved in zip(resumed.optimizer.variables, model.optimizer.variables,
                           strict=True):
        np.testing.assert_array_equal(mine.numpy(), saved.numpy())
    assert float(resumed.optimizer.learning_rate) == pytest.approx(1e-4)
    generators = {layer.name: layer.seed_generator.state.numpy().tolist()
                  for layer in resumed.layers if hasattr(layer, "seed_generator")}
    assert generators == state.random_states
    history = resumed.fit(x, y, batch_size=8, initial_epoch=2, epochs=3, verbose=0)
    assert history.epoch == [2]


def test_without_a_checkpoint_nothing_is_restored(tmp_path):
    model, state = compiled_model(), checkpoints.RunState()
    before = [w.numpy().copy() for w in model.weights]
    assert checkpoints.restore(str(tmp_path), model, state) is None
    assert state == checkpoints.RunState() and checkpoints.latest(str(tmp_path)) is None
    for mine, saved in zip(model.weights, before, strict=True):
        np.testing.assert_array_equal(mine.numpy(), saved)


def test_a_failed_write_leaves_the_previous_checkpoint_whole(tmp_path, monkeypatch):
    model, run = compiled_model(), described(tmp_path)
    model.optimizer.build(model.trainable_variables)
    first = checkpoints.save(str(tmp_path), model, run, checkpoints.RunState(epoch=1))

    def full_disk(path, *args, **kwargs):
        with open(path, "wb") as file:
            file.write(b"\x89HDF\r\n\x1a\n half a file")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(model, "save_weights", full_disk)
    with pytest.raises(files.WriteFailed, match=r"cannot write .*epoch-2 \(the disk is full\)"):
        checkpoints.save(str(tmp_path), model, run, checkpoints.RunState(epoch=2))
    assert checkpoints.latest(str(tmp_path)) == first
    assert os.listdir(checkpoints.directory(str(tmp_path))) == ["epoch-1"]  # no partial left
    resumed = checkpoints.RunState()
    assert checkpoints.restore(str(tmp_path), compiled_model(), resumed) == first
    assert resumed.epoch == 1


def test_a_partial_directory_is_not_a_checkpoint(tmp_path):
    """What a process killed while writing epoch 3 leaves: epoch 2, and epoch 3 unrenamed."""
    model, run = compiled_model(), described(tmp_path)
    model.optimizer.build(model.trainable_variables)
    checkpoints.save(str(tmp_path), model, run, checkpoints.RunState(epoch=2))
    partial = os.path.join(checkpoints.directory(str(tmp_path)), ".epoch-3.partial")
    os.makedirs(partial)
    assert checkpoints.saved_epoch(str(tmp_path)) == 2
    checkpoints.save(str(tmp_path), model, run, checkpoints.RunState(epoch=3))
    assert os.listdir(checkpoints.directory(str(tmp_path))) == ["epoch-3"]


def test_run_state_round_trips(tmp_path):
    state = checkpoints.RunState(epoch=4, best_val_score=0.5, epochs_without_gain=1,
                                 learning_rate_drops=2, reference_loss=0.25,
                                 random_states={"fc1_dropout": [1, 2]})
    state.save(str(tmp_path / "state.json"))
    restored = checkpoints.RunState()
    restored.restore(str(tmp_path / "state.json"))
    assert restored == state

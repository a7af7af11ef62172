"""One checkpoint per completed epoch: everything a stopped run needs to go on as if it had
not stopped, written together and atomically, like torchvision's single checkpoint dict.

    <model_dir>/checkpoint/epoch-<N>/
        model.weights.h5   the net's variables and its optimizer's (step count and learning
                           rate included): Keras' `save_weights` of the compiled model
        state.json         `RunState`: the epoch, the schedule's counters, the divergence
                           guard's reference loss, the dropout layers' seed-generator states
        run.json           the run's settings (`keras_vgg.runs.Run`)

An epoch's directory is written under a temporary name and renamed when complete
(`files.replaced_directory`), and the one before it is removed only then: a reader finds
whole checkpoints only, so a run stopped at any moment (SIGKILL, a full disk) resumes from
its newest. `restore` reads one back before `fit`, which is then told the epoch to start at
(`initial_epoch`). With a seed, the data of each epoch is a function of the seed and the
epoch, so a resumed run ends with the weights of an uninterrupted one.

A finished run's checkpoint is removed (`remove`): its final weights are the result.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import shutil

import keras

from keras_vgg import files, runs, weights

CHECKPOINT_DIR = "checkpoint"
WEIGHTS_FILE = "model.weights.h5"
STATE_FILE = "state.json"
_EPOCH_DIR = re.compile(r"epoch-(\d+)")


@dataclasses.dataclass
class RunState:
    """What a resumed run restores besides weights and optimizer.

    Attributes:
      epoch: epochs completed.
      best_val_score: the best value so far of what the schedule watches (validation
        accuracy, or minus the validation loss), None before the first.
      epochs_without_gain: epochs since it last improved.
      steps_without_gain: training steps since it last improved.
      learning_rate_drops: how often the rate has been divided by 10.
      reference_loss: the lowest training loss so far, from which divergence is judged.
      random_states: each dropout layer's seed-generator state, by layer name.
    """

    epoch: int = 0
    best_val_score: float | None = None
    epochs_without_gain: int = 0
    steps_without_gain: int = 0
    learning_rate_drops: int = 0
    reference_loss: float | None = None
    random_states: dict[str, list[int]] = dataclasses.field(default_factory=dict)

    def save(self, path: str) -> None:
        files.write_json(path, dataclasses.asdict(self))

    def restore(self, path: str) -> None:
        """Takes the fields saved in `path` (a field it lacks takes a fresh state's).

        Raises:
          ValueError: `path` is damaged: not JSON, or a field of another type; the state is
            then unchanged.
        """
        saved = files.read_json(path, what="run state")
        if not isinstance(saved, dict):
            raise ValueError(f"run state {path} is not a JSON object")
        fresh = dataclasses.asdict(RunState())
        restored = {name: saved.get(name, value) for name, value in fresh.items()}
        for name, value in restored.items():
            if not _valid_state_field(name, value):
                raise ValueError(f"run state {path}: {name}={str(value)[:60]!r} is not a "
                                 "value of that field")
        for name, value in restored.items():
            setattr(self, name, value)


def _count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _valid_state_field(name: str, value) -> bool:
    if name in ("epoch", "epochs_without_gain", "steps_without_gain", "learning_rate_drops"):
        return _count(value)
    if name in ("best_val_score", "reference_loss"):
        return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)
                                 and math.isfinite(value))
    if name == "random_states":
        return isinstance(value, dict) and all(
            isinstance(state, list) and all(isinstance(number, int) for number in state)
            for state in value.values())
    raise KeyError(name)


def directory(model_dir: str) -> str:
    """Where a run's checkpoints live while it trains."""
    return os.path.join(model_dir, CHECKPOINT_DIR)


def _epoch_directories(model_dir: str) -> list[tuple[int, str]]:
    """The complete checkpoints under `model_dir`, as (epoch, path), oldest first."""
    parent = directory(model_dir)
    if not os.path.isdir(parent):
        return []
    found = [(int(match.group(1)), os.path.join(parent, name))
             for name in os.listdir(parent) if (match := _EPOCH_DIR.fullmatch(name))]
    return sorted(found)


def latest(model_dir: str) -> str | None:
    """The newest complete checkpoint's directory, None when there is none."""
    found = _epoch_directories(model_dir)
    return found[-1][1] if found else None


def cannot_resume(checkpoint: str, cause) -> ValueError:
    return ValueError(f"the run cannot resume: {cause}. Delete {checkpoint} to train it again "
                      "from its first epoch")


def _read_state(checkpoint: str) -> RunState:
    """The run state saved in `checkpoint`; ValueError saying what to delete when it is
    missing or damaged."""
    state = RunState()
    try:
        state.restore(os.path.join(checkpoint, STATE_FILE))
    except ValueError as error:
        raise cannot_resume(checkpoint, error) from error
    return state


def saved_state(model_dir: str) -> RunState | None:
    """The run state of the newest checkpoint, None without one.

    Raises:
      ValueError: its state is missing or damaged; the message says what to delete.
    """
    checkpoint = latest(model_dir)
    return None if checkpoint is None else _read_state(checkpoint)


def saved_epoch(model_dir: str) -> int:
    """The epoch a run in `model_dir` resumes after: 0 without a checkpoint."""
    state = saved_state(model_dir)
    return state.epoch if state else 0


def _seed_generators(model: keras.Model) -> dict[str, keras.random.SeedGenerator]:
    return {layer.name: layer.seed_generator for layer in model.layers
            if isinstance(getattr(layer, "seed_generator", None), keras.random.SeedGenerator)}


def save(model_dir: str, model: keras.Model, run: runs.Run, state: RunState) -> str:
    """Writes the checkpoint of epoch `state.epoch` (model, optimizer, `state` with the
    seed-generator states, `run`'s settings) as one directory, then removes the older
    ones; returns its path.

    Raises:
      files.WriteFailed: the disk is full or the directory not writable; the checkpoint
        before stays whole.
    """
    state.random_states = {
        name: keras.ops.convert_to_numpy(generator.state.value).tolist()
        for name, generator in _seed_generators(model).items()}
    path = os.path.join(directory(model_dir), f"epoch-{state.epoch}")
    with files.replaced_directory(path, needed_bytes=files.weights_bytes(model)) as staging:
        model.save_weights(os.path.join(staging, WEIGHTS_FILE))
        state.save(os.path.join(staging, STATE_FILE))
        run.save(staging)
    for _, older in _epoch_directories(model_dir):
        if older != path:
            shutil.rmtree(older, ignore_errors=True)
    return path


def restore(model_dir: str, model: keras.Model, state: RunState) -> str | None:
    """Loads the newest checkpoint into the compiled `model` (its optimizer too) and into
    `state`, seed-generator states included; returns its directory (None, changing nothing,
    without one). Call it under the strategy scope the model was built in.

    Raises:
      ValueError: the checkpoint is damaged or does not fit `model`; the message says what
        to delete.
    """
    checkpoint = latest(model_dir)
    if checkpoint is None:
        return None
    saved = _read_state(checkpoint)
    if model.optimizer is not None and not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    try:
        weights.load_checkpoint(model, os.path.join(checkpoint, WEIGHTS_FILE))
    except ValueError as error:
        raise cannot_resume(checkpoint, error) from error
    for name, generator in _seed_generators(model).items():
        if name in saved.random_states:
            generator.state.assign(saved.random_states[name])
    for field in dataclasses.fields(RunState):
        setattr(state, field.name, getattr(saved, field.name))
    return checkpoint


def remove(model_dir: str) -> None:
    """Deletes the checkpoints of a run that has finished."""
    shutil.rmtree(directory(model_dir), ignore_errors=True)

"""The training run's state and the callbacks that act on it.

`RunState` holds everything a resumed run needs besides the weights and optimizer that
Keras' `BackupAndRestore` checkpoints: the epoch, the schedule's counters, the divergence
guard's reference loss and the dropout layers' random-generator states. The run owns one
`RunState`; each callback below reads and updates its own fields of it, and
`RunStateBackup` saves and restores it beside the checkpoint.

  PaperSchedule    Sect. 3.1: divide the learning rate by 10 when validation accuracy stops
                   improving, three times, then stop; ScheduleLog announces each change.
  DivergenceGuard  stops at a NaN or infinite loss, a loss grown by orders of magnitude, or
                   an infinite validation loss; keeps the last good epoch's weights.
  DataGuard        stops when an epoch had no training images, or validation none.
  Backup           Keras' BackupAndRestore, writing its checkpoint atomically.
  Throughput       images/s of each epoch's training steps.
  StepScalars      TensorBoard scalars every N steps: loss, learning rate, images/s.
  EpochLine        the epoch's line (Keras' progress bar) shows metrics only.
  EpochCounter     the epoch, for the input pipeline's per-epoch seeds.

The divergence guard stops at a NaN or infinite loss, a first loss over 100 x ln(classes)
(the initialisation or the inputs: its message names `init` and `preprocessing`), a step's
loss a hundredfold over the lowest so far, or an infinite validation loss (its message names
the learning rate in use, a lower one to try and, for "gaussian", `init="glorot"`). It says to
start a new `model_dir`: resuming would repeat the same steps. The data guard stops an epoch
in which every training (or validation) file was skipped, with that reason, before any
weights are written or accuracy printed.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
import warnings
from collections.abc import Callable

import keras

from keras_vgg import distribute, files, runs, weights
from keras_vgg.requires_tensorflow import tf

# A training loss this many times its reference has diverged: two orders of magnitude.
DIVERGENCE_FACTOR = 100.0
# The reference never drops below this fraction of the chance loss ln(classes), so a
# nearly memorised batch's small loss rising a little is not called divergence.
REFERENCE_FLOOR = 0.1
RUN_STATE_FILE = "run_state.json"
# Where a run's checkpoint lives under its model_dir while it trains, and Keras'
# BackupAndRestore's file of the checkpoint's epoch there.
BACKUP_DIR = "backup"
TRAINING_METADATA_FILE = "training_metadata.json"


def backup_directory(model_dir: str) -> str:
    return os.path.join(model_dir, BACKUP_DIR)


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

    def restore_defaults(self, **fields) -> None:
        """Takes a fresh state's fields, except `fields`."""
        for name, value in dataclasses.asdict(RunState(**fields)).items():
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


def learning_rate(model: keras.Model) -> float:
    return float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))


def above_chance(accuracy: float, num_classes: int, images: int | None) -> bool:
    """Whether a top-1 `accuracy` on `images` is beyond what guessing among `num_classes`
    reaches: above chance by three standard errors of a guesser's accuracy on that many
    images (just above chance when the count is unknown)."""
    chance = 1 / num_classes
    margin = 3 * math.sqrt(chance * (1 - chance) / images) if images else 0.0
    return accuracy > chance + margin


class PaperSchedule(keras.callbacks.Callback):
    """Divides the learning rate by `factor` when `monitor` (validation accuracy, or a
    validation loss, which gains by falling) has not gained `min_delta` for `patience`
    epochs and at least `min_steps` training steps; at the plateau after `max_drops`
    divisions, stops training (the paper: three times, then stop). Adds `learning_rate`
    (the epoch's rate) to the logs.

    Sect. 3.1 does not say how long "stopped improving" is. An epoch of ImageNet at batch
    256 is 5,000 steps; a small data set's epoch of a few dozen steps, judged on a few
    hundred validation images, plateaus within the noise while the net still learns, so a
    plateau also needs `min_steps`. With `num_classes`, validation accuracy no better than
    chance (`above_chance`, on `validation_images`) counts no plateau: a net that has not
    started to learn gains nothing from a lower rate (BENCHMARKS.md, Small data).

    Each change is announced after the epoch's line (`ScheduleLog`, after Keras' progress
    bar): `announcement` holds it until then.
    """

    def __init__(self, state: RunState, *, patience: int, min_steps: int = 0,
                 max_drops: int = runs.PAPER_LR_DROPS, factor: float = runs.LR_DROP_FACTOR,
                 min_delta: float = 1e-4, monitor: str = "val_accuracy",
                 num_classes: int | None = None, validation_images: int | None = None):
        super().__init__()
        self.state = state
        self.patience = patience
        self.min_steps = min_steps
        self.max_drops = max_drops
        self.factor = factor
        self.min_delta = min_delta
        self.monitor = monitor
        self.sign = -1.0 if monitor.endswith("loss") else 1.0
        self.what = "validation loss" if self.sign < 0 else "validation accuracy"
        self.num_classes = num_classes if self.sign > 0 else None
        self.validation_images = validation_images
        self.announcement = None

    def on_train_batch_end(self, batch, logs=None):
        self.state.steps_without_gain += 1

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        rate = learning_rate(self.model)
        logs["learning_rate"] = rate
        value = logs.get(self.monitor)
        if value is None:
            if epoch == 0:
                warnings.warn(f"PaperSchedule needs validation data ({self.monitor}); without "
                              "it the learning rate stays as it is", stacklevel=2)
            return
        state = self.state
        score = self.sign * float(value)
        learning = self.num_classes is None or above_chance(
            float(value), self.num_classes, self.validation_images)
        if state.best_val_score is None or score > state.best_val_score + self.min_delta \
                or not learning:
            state.best_val_score = max(score, state.best_val_score or score)
            state.epochs_without_gain = state.steps_without_gain = 0
            return
        state.epochs_without_gain += 1
        if state.epochs_without_gain < self.patience or state.steps_without_gain < self.min_steps:
            return
        state.epochs_without_gain = state.steps_without_gain = 0
        if state.learning_rate_drops == self.max_drops:
            self.announcement = (f"The {self.what} stopped improving after "
                                 f"{state.learning_rate_drops} learning-rate drops: stopping, "
                                 "as the paper does.")
            self.model.stop_training = True
            return
        state.learning_rate_drops += 1
        self.model.optimizer.learning_rate = rate * self.factor
        self.announcement = (f"Epoch {epoch + 1}: the {self.what} stopped improving; learning "
                             f"rate {rate:.3g} -> {rate * self.factor:.3g} (drop "
                             f"{state.learning_rate_drops} of {self.max_drops}).")


class ScheduleLog(keras.callbacks.Callback):
    """Prints the schedule's announcement of an epoch after Keras' line for that epoch:
    place it after the `ProgbarLogger`."""

    def __init__(self, schedule: PaperSchedule):
        super().__init__()
        self.schedule = schedule

    def on_epoch_end(self, epoch, logs=None):
        if self.schedule.announcement:
            print(self.schedule.announcement, flush=True)
            self.schedule.announcement = None


class EpochLine(keras.callbacks.Callback):
    """Takes the logged values that are not metrics (`NOT_METRICS`) out of the epoch's logs
    once the CSV and TensorBoard logs have them, so that the epoch's line shows metrics
    only: place it after those loggers and before the `ProgbarLogger`."""

    NOT_METRICS = ("learning_rate", "images_per_second", "training_steps")

    def on_epoch_end(self, epoch, logs=None):
        for key in self.NOT_METRICS:
            (logs or {}).pop(key, None)


class StepScalars(keras.callbacks.Callback):
    """Writes TensorBoard scalars every `every` training steps, under `<log_dir>/train`
    beside Keras' epoch ones: `steps/loss` (the mean training loss of those steps),
    `steps/learning_rate` and `steps/images_per_second`, at the optimizer's step count
    (which a resumed run continues)."""

    def __init__(self, log_dir: str, *, every: int, global_batch_size: int):
        super().__init__()
        self.log_dir = os.path.join(log_dir, "train")
        self.every = every
        self.global_batch_size = global_batch_size
        self._writer = None

    def on_train_begin(self, logs=None):
        self._writer = tf.summary.create_file_writer(self.log_dir)

    def on_epoch_begin(self, epoch, logs=None):
        self._window = (0, 0.0, time.perf_counter())  # steps, running mean, start time

    def on_train_batch_end(self, batch, logs=None):
        if (batch + 1) % self.every or "loss" not in (logs or {}):
            return
        steps, mean, start = self._window
        now, loss = time.perf_counter(), float(logs["loss"])
        # Keras logs the epoch's running mean: the window's mean from two of them.
        window_loss = ((batch + 1) * loss - steps * mean) / (batch + 1 - steps)
        step = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
        with self._writer.as_default(step=step):
            tf.summary.scalar("steps/loss", window_loss)
            tf.summary.scalar("steps/learning_rate", learning_rate(self.model))
            tf.summary.scalar("steps/images_per_second",
                              (batch + 1 - steps) * self.global_batch_size / (now - start))
        self._window = (batch + 1, loss, now)

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()


class LossDiverged(RuntimeError):
    """Training diverged: the message says where, the likely cause and what to change."""


class DivergenceGuard(keras.callbacks.Callback):
    """Ends training by raising `LossDiverged` when
    - a step's training loss is NaN or infinite;
    - the first step's is more than `DIVERGENCE_FACTOR` times ln(classes), where an
      untrained net starts (cause "start": the initialisation or the inputs);
    - a later step's is more than `DIVERGENCE_FACTOR` times the lowest so far, never taken
      below `REFERENCE_FLOOR` x ln(classes) (cause "growth": most often the learning rate);
    - a validation loss is NaN or infinite (cause "growth").
    Keras logs the epoch's running mean at each step; the step's own loss is recovered from
    two consecutive means. Raising (rather than `stop_training`) keeps Keras from finishing
    the epoch, so the checkpoint and `last_good_path` keep the last completed good epoch.
    `advice(cause)` ends the message: the likely cause and the settings to change.
    """

    def __init__(self, state: RunState, *, num_classes: int, last_good_path: str,
                 advice: Callable[[str], str]):
        super().__init__()
        self.state = state
        self.chance = math.log(max(num_classes, 2))
        self.last_good_path = last_good_path
        self.advice = advice
        self._epoch = 0
        self._steps_and_mean = (0, 0.0)  # this epoch's steps so far and their mean loss

    def _stop(self, what: str, cause: str):
        kept = (f"The last good epoch's weights are in {self.last_good_path}."
                if os.path.exists(self.last_good_path) else "No epoch completed before it.")
        raise LossDiverged(f"training diverged in epoch {self._epoch + 1}: {what}. "
                           f"{self.advice(cause)} {kept}")

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._steps_and_mean = (0, 0.0)

    def on_train_batch_end(self, batch, logs=None):
        mean = (logs or {}).get("loss")
        if mean is None:
            return
        steps, previous_mean = self._steps_and_mean
        self._steps_and_mean = (batch + 1, float(mean))
        loss = ((batch + 1) * float(mean) - steps * previous_mean) / (batch + 1 - steps)
        step = f"step {batch + 1}"
        if not math.isfinite(loss):
            self._stop(f"the training loss became {float(mean)} at {step}", "growth")
        lowest = self.state.reference_loss
        if lowest is None and loss > DIVERGENCE_FACTOR * self.chance:
            self._stop(f"the training loss started at {loss:.3g}, over {DIVERGENCE_FACTOR:g} "
                       f"times the {self.chance:.3g} (ln of the number of classes) that an "
                       "untrained net starts at", "start")
        if lowest is not None:
            reference = max(lowest, REFERENCE_FLOOR * self.chance)
            if loss > DIVERGENCE_FACTOR * reference:
                self._stop(f"the training loss grew from {reference:.3g} to {loss:.3g} at "
                           f"{step}, over {DIVERGENCE_FACTOR:g} times", "growth")
        self.state.reference_loss = loss if lowest is None else min(lowest, loss)

    def on_epoch_end(self, epoch, logs=None):
        val_loss = (logs or {}).get("val_loss")
        if val_loss is not None and not math.isfinite(float(val_loss)):
            self._stop(f"the validation loss is {val_loss}", "growth")
        files.save_weights(self.model, self.last_good_path)


class NoData(RuntimeError):
    """An epoch had no images to train or validate on: every file was skipped."""


class DataGuard(keras.callbacks.Callback):
    """Raises `NoData` at the end of an epoch that had no training step, or no validation
    loss although validation data was given: every image was skipped (each skip is named
    on stderr), and training on would report an accuracy of nothing."""

    def __init__(self, *, training: str, validation: str | None):
        super().__init__()
        self.training = training
        self.validation = validation

    def on_epoch_begin(self, epoch, logs=None):
        self._steps = 0

    def on_train_batch_end(self, batch, logs=None):
        self._steps = batch + 1

    def on_epoch_end(self, epoch, logs=None):
        if not self._steps:
            raise NoData(f"epoch {epoch + 1} had no training images: every file of "
                         f"{self.training!r} was skipped (the 'skipped' lines above say why)")
        if self.validation and "val_loss" not in (logs or {}):
            raise NoData(f"epoch {epoch + 1} had no validation images: every file of "
                         f"{self.validation!r} was skipped (the 'skipped' lines above say "
                         "why)")


class Backup(keras.callbacks.BackupAndRestore):
    """Keras' BackupAndRestore, writing `latest.weights.h5` and its metadata atomically
    (`keras_vgg.files`): Keras writes them in place, so a crash or a full disk during the
    write leaves a checkpoint that cannot be loaded, and the run cannot resume.

    Restoring goes through the package's checked loader (`weights.load_checkpoint`), and a
    damaged checkpoint or metadata stops the run with one line saying what to delete.

    Keras has no public hook for how the checkpoint is written or read: this overrides the
    private `_save_model` and `_load_model`, and uses the private paths, counters and
    `model._initial_epoch` they use. `tests/test_callbacks.py` fails when Keras changes them."""

    def _save_model(self):
        files.save_weights(self.model, self._weights_path)
        files.write_json(self._training_metadata_path,
                         {"epoch": self._current_epoch, "batch": self._last_batch_seen})

    def _load_model(self):
        """Restores the checkpoint through the checked loader (`weights.load_checkpoint`);
        a damaged one (or damaged metadata) stops the run with one line saying what to
        delete."""
        if os.path.exists(self._weights_path):
            if self.model.optimizer is not None and not self.model.optimizer.built:
                self.model.optimizer.build(self.model.trainable_variables)
            try:
                weights.load_checkpoint(self.model, self._weights_path)
            except ValueError as error:
                raise _cannot_resume(self.backup_dir, error) from error
        epoch = backed_up_epoch(self.backup_dir)
        if epoch:
            self.model._initial_epoch = epoch


class Throughput(keras.callbacks.Callback):
    """Adds the epoch's `training_steps` and `images_per_second` (steps x global batch over
    the steps' time, validation excluded) to the logs and `history.csv`."""

    def __init__(self, global_batch_size: int):
        super().__init__()
        self.global_batch_size = global_batch_size

    def on_epoch_begin(self, epoch, logs=None):
        self._start = self._last = time.perf_counter()
        self._steps = 0

    def on_train_batch_end(self, batch, logs=None):
        self._steps = batch + 1
        self._last = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        logs["training_steps"] = self._steps
        elapsed = self._last - self._start
        if elapsed > 0:
            logs["images_per_second"] = self._steps * self.global_batch_size / elapsed


class EpochCounter(keras.callbacks.Callback):
    """Holds the current epoch in an int64 variable that `keras_vgg.data.train_dataset(...,
    epoch=counter.variable)` reads, set at each epoch's start (also the first epoch of a
    resumed run): the data of epoch k does not depend on how many epochs this process has
    iterated, which resuming needs."""

    def __init__(self):
        super().__init__()
        with tf.device("/cpu:0"):
            self.variable = tf.Variable(0, dtype=tf.int64, trainable=False, name="data_epoch")

    def on_epoch_begin(self, epoch, logs=None):
        self.variable.assign(epoch)


def backed_up_epoch(backup_dir: str) -> int:
    """The epoch BackupAndRestore resumes from in `backup_dir` (0 without a backup);
    ValueError naming the file when it is damaged."""
    metadata = os.path.join(backup_dir, TRAINING_METADATA_FILE)
    if not os.path.exists(metadata):
        return 0
    try:
        document = files.read_json(metadata, what="checkpoint metadata")
    except ValueError as error:
        raise _cannot_resume(backup_dir, error) from error
    epoch = document.get("epoch") if isinstance(document, dict) else None
    if not _count(epoch):
        raise _cannot_resume(backup_dir, f"checkpoint metadata {metadata} holds no epoch")
    return epoch


def _cannot_resume(backup_dir: str, cause) -> ValueError:
    return ValueError(f"the run cannot resume: {cause}. Delete {backup_dir} to train it again "
                      "from its first epoch")


class RunStateBackup(keras.callbacks.Callback):
    """Saves the `RunState` beside BackupAndRestore's checkpoint at each epoch's end
    (keeping the previous epoch's too), and restores the one of the checkpoint's epoch when
    training resumes, with the dropout layers' random-generator states: a resumed run then
    trains exactly as an uninterrupted one, also when it was stopped between the two saves.
    Place it after BackupAndRestore and after the callbacks that update the state."""

    def __init__(self, state: RunState, backup_dir: str):
        super().__init__()
        self.state = state
        self.backup_dir = backup_dir
        self.path = os.path.join(backup_dir, RUN_STATE_FILE)
        self.previous_path = self.path + ".previous"

    def _generators(self) -> dict[str, keras.random.SeedGenerator]:
        return {
            layer.name: layer.seed_generator
            for layer in self.model.layers
            if isinstance(getattr(layer, "seed_generator", None), keras.random.SeedGenerator)
        }

    def on_train_begin(self, logs=None):
        resumed_epoch = backed_up_epoch(self.backup_dir)
        if not resumed_epoch:
            return
        for path in (self.path, self.previous_path):
            if not os.path.exists(path):
                continue
            try:
                self.state.restore(path)
            except ValueError as error:
                print(f"Not restored: {error}.", flush=True)
                continue
            if self.state.epoch == resumed_epoch:
                break
        else:
            print(f"{self.backup_dir} holds no run state of epoch {resumed_epoch}, the "
                  "checkpoint's: the schedule's counters and the dropout masks start afresh.",
                  flush=True)
            self.state.restore_defaults(epoch=resumed_epoch)
        for name, generator in self._generators().items():
            if name in self.state.random_states:
                generator.state.assign(self.state.random_states[name])
        print(f"Resuming from the end of epoch {resumed_epoch} ({self.backup_dir}).",
              flush=True)

    def on_epoch_end(self, epoch, logs=None):
        self.state.epoch = epoch + 1
        self.state.random_states = {
            name: keras.ops.convert_to_numpy(generator.state.value).tolist()
            for name, generator in self._generators().items()
        }
        os.makedirs(self.backup_dir, exist_ok=True)
        if os.path.exists(self.path):
            os.replace(self.path, self.previous_path)
        self.state.save(self.path)


class WorkersResumeTogether(keras.callbacks.Callback):
    """Under MultiWorkerMirroredStrategy each worker restores its own backup. If they resume
    from different epochs (a worker killed between two workers' saves, a lost directory),
    training would hang in a collective or drift apart: this stops every worker at the
    start with an error naming the epochs. Place it after BackupAndRestore."""

    def __init__(self, strategy: tf.distribute.Strategy, backup_dir: str):
        super().__init__()
        self.strategy = strategy
        self.backup_dir = backup_dir

    def on_train_begin(self, logs=None):
        epoch = backed_up_epoch(self.backup_dir)
        agree, mean = distribute.workers_agree(self.strategy, epoch)
        if not agree:
            raise RuntimeError(
                f"this worker resumes from epoch {epoch} ({self.backup_dir}), but the "
                f"workers disagree (mean epoch {mean:g}): give every worker the same "
                "backup (copy the chief's backup/ into each worker's directory) or remove "
                "them all to start again.")


def callbacks(
    model_dir: str,
    *,
    state: RunState,
    global_batch_size: int,
    num_classes: int,
    patience: int = 2,
    min_steps: int = 0,
    max_drops: int = runs.PAPER_LR_DROPS,
    monitor: str = "val_accuracy",
    validation_images: int | None = None,
    log_every: int = 20,
    advice: Callable[[str], str] = lambda cause: "Lower the learning rate.",
    strategy: tf.distribute.Strategy | None = None,
    training_data: str = "the training data",
    validation_data: str | None = None,
) -> list[keras.callbacks.Callback]:
    """The run's callbacks, all writing under `model_dir`: throughput, the divergence guard,
    the paper's schedule (watching `monitor`; `patience`, `min_steps`, and on
    `validation_images` images no plateau at chance), backup/restore of weights,
    optimizer and `state`, CSV and TensorBoard logs (scalars every `log_every` steps), and
    Keras' progress bar, whose epoch lines show metrics only, each rate change announced
    after its epoch's line; with a multi-worker `strategy`, the check that every worker
    resumes from the same epoch. `advice(cause)` ends a divergence message
    (`DivergenceGuard`); `training_data` and `validation_data` name the sources in
    `DataGuard`'s message (no `validation_data`: no validation expected)."""
    os.makedirs(model_dir, exist_ok=True)
    backup_dir = backup_directory(model_dir)
    schedule = PaperSchedule(state, patience=patience, min_steps=min_steps, max_drops=max_drops,
                             monitor=monitor, num_classes=num_classes,
                             validation_images=validation_images)
    # Order matters at each epoch's end: the guard checks the validation loss before the
    # schedule acts, and BackupAndRestore and RunStateBackup save after both, so the
    # checkpoint's learning rate and the saved state describe the same moment; the logs
    # take every value before the epoch's line drops those that are not metrics.
    return [
        DataGuard(training=training_data, validation=validation_data),
        Throughput(global_batch_size),
        DivergenceGuard(state, num_classes=num_classes, advice=advice,
                        last_good_path=os.path.join(model_dir, "last_good.weights.h5")),
        schedule,
        Backup(backup_dir),
        *([WorkersResumeTogether(strategy, backup_dir)]
          if strategy is not None and distribute.is_multi_worker(strategy) else []),
        RunStateBackup(state, backup_dir),
        keras.callbacks.CSVLogger(os.path.join(model_dir, "history.csv"), append=True),
        keras.callbacks.TensorBoard(os.path.join(model_dir, "logs")),
        StepScalars(os.path.join(model_dir, "logs"), every=log_every,
                    global_batch_size=global_batch_size),
        EpochLine(),
        keras.callbacks.ProgbarLogger(),
        ScheduleLog(schedule),
    ]

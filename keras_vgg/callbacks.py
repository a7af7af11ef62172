"""The callbacks of a training run, each acting on its own fields of the run's
`checkpoints.RunState` (the run owns one; `Checkpoint` writes it with the weights):

  PaperSchedule    Sect. 3.1: divide the learning rate by 10 when validation accuracy stops
                   improving, three times, then stop; ScheduleLog announces each change.
  DivergenceGuard  stops at a NaN or infinite loss, a loss grown by orders of magnitude, or
                   an infinite validation loss; the newest checkpoint is the last good epoch.
  DataGuard        stops when an epoch had no training images, or validation none.
  Checkpoint       the epoch's one atomic checkpoint (`keras_vgg.checkpoints`).
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

import collections
import contextlib
import math
import os
import signal
import threading
import time
import warnings
from collections.abc import Callable

import keras

from keras_vgg import checkpoints, runs
from keras_vgg.requires_tensorflow import tf

# A training loss this many times its reference has diverged: two orders of magnitude.
DIVERGENCE_FACTOR = 100.0
# The reference never drops below this fraction of the chance loss ln(classes), so a
# nearly memorised batch's small loss rising a little is not called divergence.
REFERENCE_FLOOR = 0.1
# Growth is judged on the mean loss of the last steps that hold at least this many images:
# one image's loss (a photo the net is sure is of the other class) can be 100 times the
# lowest, as a small data set's batch of 1 or 2 shows it.
DIVERGENCE_IMAGES = 32


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

    def __init__(self, state: checkpoints.RunState, *, patience: int, min_steps: int = 0,
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
    - the mean of the last steps' losses (steps enough for `DIVERGENCE_IMAGES` images of
      `global_batch_size`; one step at 32 or more) is more than `DIVERGENCE_FACTOR` times
      the lowest such mean so far, never taken below `REFERENCE_FLOOR` x ln(classes)
      (cause "growth": most often the learning rate);
    - a validation loss is NaN or infinite (cause "growth").
    Keras logs the epoch's running mean at each step; the step's own loss is recovered from
    two consecutive means. Raising (rather than `stop_training`) keeps Keras from finishing
    the epoch, so the newest checkpoint under `model_dir` stays the last good epoch, which
    the message names. `advice(cause)` ends it: the likely cause and the settings to change.
    Place it before `Checkpoint`.
    """

    def __init__(self, state: checkpoints.RunState, *, num_classes: int, model_dir: str,
                 advice: Callable[[str], str], global_batch_size: int = DIVERGENCE_IMAGES):
        super().__init__()
        self.state = state
        self.chance = math.log(max(num_classes, 2))
        self.model_dir = model_dir
        self.advice = advice
        self._epoch = 0
        self._steps_and_mean = (0, 0.0)  # this epoch's steps so far and their mean loss
        self._window = -(-DIVERGENCE_IMAGES // global_batch_size)  # steps judged together
        self._recent = collections.deque(maxlen=self._window)  # their losses

    def _stop(self, what: str, cause: str):
        checkpoint = checkpoints.latest(self.model_dir)
        kept = (f"The last good epoch's weights are in "
                f"{os.path.join(checkpoint, checkpoints.WEIGHTS_FILE)}." if checkpoint
                else "No epoch completed before it.")
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
        if lowest is None and not self._recent and loss > DIVERGENCE_FACTOR * self.chance:
            self._stop(f"the training loss started at {loss:.3g}, over {DIVERGENCE_FACTOR:g} "
                       f"times the {self.chance:.3g} (ln of the number of classes) that an "
                       "untrained net starts at", "start")
        self._recent.append(loss)
        if len(self._recent) < self._window:
            return
        judged = math.fsum(self._recent) / self._window
        if lowest is not None:
            reference = max(lowest, REFERENCE_FLOOR * self.chance)
            if judged > DIVERGENCE_FACTOR * reference:
                over = (f" (the mean of the last {self._window} steps)" if self._window > 1
                        else "")
                self._stop(f"the training loss grew from {reference:.3g} to {judged:.3g}{over} "
                           f"at {step}, over {DIVERGENCE_FACTOR:g} times", "growth")
        self.state.reference_loss = judged if lowest is None else min(lowest, judged)

    def on_epoch_end(self, epoch, logs=None):
        val_loss = (logs or {}).get("val_loss")
        if val_loss is not None and not math.isfinite(float(val_loss)):
            self._stop(f"the validation loss is {val_loss}", "growth")


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


class Checkpoint(keras.callbacks.Callback):
    """Writes each epoch's one checkpoint (`keras_vgg.checkpoints.save`): the model, its
    optimizer, `state` (its epoch set to the epochs completed) and `run`'s settings, under
    `model_dir`. Place it after the callbacks that update `state` and the learning rate, so
    that all of it describes the same moment."""

    def __init__(self, model_dir: str, run: runs.Run, state: checkpoints.RunState):
        super().__init__()
        self.model_dir = model_dir
        self.run = run
        self.state = state

    def on_epoch_end(self, epoch, logs=None):
        self.state.epoch = epoch + 1
        checkpoints.save(self.model_dir, self.model, self.run, self.state)


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


class Terminated(Exception):
    """SIGTERM arrived (a scheduler or `kill` stopping the run)."""


class SignalStop(keras.callbacks.Callback):
    """Stops `model.fit` at a signal between two steps. While `noting()` holds (in the main
    thread), SIGINT and SIGTERM are only noted; the next step's end (or epoch's start)
    raises them as KeyboardInterrupt and `Terminated`, as does `noting()`'s end. Raised
    where a signal lands, the exception can fall inside TensorFlow's C++ (creating an
    epoch's data iterator), which then aborts the process."""

    EXCEPTIONS = {signal.SIGINT: KeyboardInterrupt, signal.SIGTERM: Terminated}

    def __init__(self):
        super().__init__()
        self.arrived: int | None = None

    @contextlib.contextmanager
    def noting(self):
        if threading.current_thread() is not threading.main_thread():
            yield  # only the main thread receives signals
            return
        previous = {signum: signal.signal(signum, self._note) for signum in self.EXCEPTIONS}
        try:
            yield
            self._raise_arrived()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def _note(self, signum, frame):
        self.arrived = signum

    def _raise_arrived(self):
        if self.arrived is not None:
            raise self.EXCEPTIONS[self.arrived]()

    def on_epoch_begin(self, epoch, logs=None):
        self._raise_arrived()

    def on_train_batch_end(self, batch, logs=None):
        self._raise_arrived()

    def on_test_batch_end(self, batch, logs=None):
        self._raise_arrived()


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


def callbacks(
    run: runs.Run,
    *,
    state: checkpoints.RunState,
    monitor: str = "val_accuracy",
    validation_images: int | None = None,
    advice: Callable[[str], str] = lambda cause: "Lower the learning rate.",
) -> list[keras.callbacks.Callback]:
    """The callbacks of `run`, all writing under its directory: throughput, the guards, the
    paper's schedule (watching `monitor`, with the config's `plateau_patience` and
    `plateau_min_steps`, and on `validation_images` images no plateau at chance), the
    epoch's checkpoint of weights, optimizer and `state`, CSV and TensorBoard logs (scalars
    every `log_every` steps), and Keras' progress bar, whose epoch lines show metrics only,
    each rate change announced after its epoch's line. `advice(cause)` ends a divergence
    message (`DivergenceGuard`); `DataGuard`'s message names the config's sources."""
    config = run.config
    model_dir = run.directory or config.model_dir
    os.makedirs(model_dir, exist_ok=True)
    schedule = PaperSchedule(state, patience=config.plateau_patience,
                             min_steps=config.plateau_min_steps, monitor=monitor,
                             num_classes=run.num_classes, validation_images=validation_images)
    # Order matters at each epoch's end: the guard checks the validation loss before the
    # schedule acts, and the checkpoint is written after both, so its learning rate and
    # state describe the same moment; the logs take every value before the epoch's line
    # drops those that are not metrics.
    return [
        DataGuard(training=config.data, validation=config.validation_source[0]),
        Throughput(config.batch_size),
        DivergenceGuard(state, num_classes=run.num_classes, model_dir=model_dir,
                        advice=advice, global_batch_size=config.batch_size),
        schedule,
        Checkpoint(model_dir, run, state),
        keras.callbacks.CSVLogger(os.path.join(model_dir, "history.csv"), append=True),
        keras.callbacks.TensorBoard(os.path.join(model_dir, "logs")),
        StepScalars(os.path.join(model_dir, "logs"), every=config.log_every,
                    global_batch_size=config.batch_size),
        EpochLine(),
        keras.callbacks.ProgbarLogger(),
        ScheduleLog(schedule),
    ]

"""Training: the distribution strategy, the paper's optimiser and schedule, and callbacks.

Sect. 3.1: multinomial logistic regression, mini-batch SGD with momentum 0.9, batch 256,
weight decay 5e-4 (Caffe's: the gradient gets 5e-4 * w, i.e. an L2 loss of 2.5e-4 * |w|^2),
dropout 0.5 on fc1/fc2, learning rate 1e-2 divided by 10 when validation accuracy stops
improving, three times, then stop (74 epochs at most).
"""

from __future__ import annotations

import json
import math
import os
import time

import keras
import tensorflow as tf

PAPER_BATCH_SIZE = 256
PAPER_EPOCHS = 74
PAPER_LEARNING_RATE = 1e-2
PAPER_MOMENTUM = 0.9
PAPER_WEIGHT_DECAY = 5e-4
PAPER_LR_DROPS = 3
LR_DROP_FACTOR = 0.1


def l2_for_weight_decay(weight_decay: float) -> keras.regularizers.Regularizer | None:
    """Caffe's weight decay `wd` (gradient + wd * w) as a Keras L2 loss: l2(wd / 2).

    Keras' decoupled `weight_decay` in the optimiser is a different rule under momentum.
    """
    return keras.regularizers.L2(weight_decay / 2) if weight_decay > 0 else None


def _several_tasks(cluster: dict) -> bool:
    """Whether a cluster spec (`{"worker": [...], ...}`) names more than one process."""
    return sum(len(tasks) for tasks in cluster.values()) > 1


def cluster_from_environment() -> dict[str, list[str]]:
    """The cluster TF_CONFIG describes (`{"worker": ["host:port", ...], ...}`), or {};
    checked, with this process's task, so that a malformed TF_CONFIG is named here rather
    than deep inside TensorFlow."""
    text = os.environ.get("TF_CONFIG") or "{}"
    try:
        config = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"TF_CONFIG is not valid JSON ({error}): {text!r}") from error
    cluster = config.get("cluster", {}) if isinstance(config, dict) else None
    if not isinstance(cluster, dict) or not all(
            isinstance(tasks, list) and all(isinstance(t, str) for t in tasks)
            for tasks in cluster.values()):
        raise ValueError('TF_CONFIG must be {"cluster": {"worker": ["host:port", ...]}, "task": '
                         f'{{"type": "worker", "index": i}}}}; got {text!r}')
    if _several_tasks(cluster):
        task = config.get("task")
        if not (isinstance(task, dict) and task.get("type") in cluster
                and isinstance(task.get("index"), int)
                and 0 <= task["index"] < len(cluster[task["type"]])):
            raise ValueError(f"TF_CONFIG's task {task!r} is not one of its cluster {cluster}: "
                             'expected {"type": "worker", "index": i}')
    return cluster


def strategy_from_environment() -> tf.distribute.Strategy:
    """MultiWorkerMirroredStrategy when TF_CONFIG describes a cluster of several tasks (each
    worker uses all its GPUs, or its CPU); else MirroredStrategy over the visible GPUs; else
    the default (single-device) strategy."""
    if _several_tasks(cluster_from_environment()):
        return tf.distribute.MultiWorkerMirroredStrategy()
    if tf.config.list_logical_devices("GPU"):
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def is_multi_worker(strategy: tf.distribute.Strategy) -> bool:
    """Whether `strategy` spans several processes (a MultiWorkerMirroredStrategy cluster)."""
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return False
    return _several_tasks(strategy.cluster_resolver.cluster_spec().as_dict())


def worker_dir(model_dir: str, strategy: tf.distribute.Strategy) -> str:
    """Where this process writes: `model_dir` for the chief (or a single process), and
    `model_dir/workers/<task>_<index>` for the other workers of a cluster, whose checkpoints
    and logs repeat the chief's (every worker holds the same weights)."""
    if not is_multi_worker(strategy) or strategy.extended.should_checkpoint:
        return model_dir
    resolver = strategy.cluster_resolver
    return os.path.join(model_dir, "workers", f"{resolver.task_type}_{resolver.task_id}")


def fit_under_multi_worker(model: keras.Model, strategy: tf.distribute.Strategy) -> None:
    """Lets Keras 3.15's `model.fit` / `evaluate` run `model` under MultiWorkerMirroredStrategy
    with several workers; does nothing otherwise.

    Keras' own code fails there twice (tests/test_recipes.py runs two real workers):
    - keras-team/keras#20585: before the first step, fit all-reduces a whole input batch
      across workers to build the model symbolically, and MultiWorkerMirroredStrategy cannot
      reduce a nested batch. The build only needs shapes: this worker's own part serves.
    - tensorflow/tensorflow#72388: each step's logged values are averaged across replicas
      along axis 0, which a scalar lacks. The steps here return each scalar as a `[1]`
      vector, so the per-step logs are the mean over replicas, the same on every worker
      (the per-epoch logs read the metrics across all replicas, as without workers).
    """
    if not is_multi_worker(strategy):
        return

    def build_from_local_batch(iterator=None, data_batch=None):
        if iterator is not None:
            for _, _, batches in iterator:
                data_batch = tf.nest.map_structure(
                    lambda value: strategy.experimental_local_results(value)[0],
                    next(batches))
                break
        with strategy.scope():
            model._symbolic_build(data_batch=data_batch)

    def as_vectors(step):
        def step_with_vector_logs(data):
            return tf.nest.map_structure(
                lambda value: tf.reshape(value, [-1]) if tf.convert_to_tensor(value).shape.rank
                == 0 else value,
                step(data))

        return step_with_vector_logs

    model._maybe_symbolic_build = build_from_local_batch
    model.train_step = as_vectors(model.train_step)
    model.test_step = as_vectors(model.test_step)


def compile_for_training(
    model: keras.Model,
    *,
    learning_rate: float = PAPER_LEARNING_RATE,
    momentum: float = PAPER_MOMENTUM,
    steps_per_execution: int = 1,
) -> None:
    """SGD with momentum on softmax cross-entropy; top-1 and top-5 accuracy."""
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=learning_rate, momentum=momentum),
        loss=keras.losses.SparseCategoricalCrossentropy(),
        metrics=[
            keras.metrics.SparseCategoricalAccuracy(name="accuracy"),
            keras.metrics.SparseTopKCategoricalAccuracy(k=5, name="top5"),
        ],
        steps_per_execution=steps_per_execution,
    )


class StopAfterLearningRateDrops(keras.callbacks.Callback):
    """Stops training at the first validation plateau after the learning rate has been
    divided `max_drops` times (the paper: three times, then stop).

    Keras' ReduceLROnPlateau divides the rate; it neither counts its reductions nor stops,
    hence this companion. Placed after it, it sees each reduction; at reduction
    `max_drops + 1` it puts the rate back and ends training.
    """

    def __init__(self, max_drops: int):
        super().__init__()
        self.max_drops = max_drops
        self.drops = 0
        self.last_rate = None

    def _rate(self) -> float:
        return float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))

    def on_train_begin(self, logs=None):
        self.last_rate = self._rate()

    def on_epoch_end(self, epoch, logs=None):
        rate = self._rate()
        if rate < self.last_rate:
            if self.drops == self.max_drops:
                self.model.optimizer.learning_rate = self.last_rate
                print(f"\nValidation accuracy stopped improving after {self.drops} "
                      "learning-rate drops: stopping, as the paper does.")
                self.model.stop_training = True
                return
            self.drops += 1
        self.last_rate = rate


class ResumeStateBackup(keras.callbacks.Callback):
    """What BackupAndRestore leaves out, saved beside its checkpoint at each epoch end and
    restored when it resumes that epoch: the layers' random-generator states (dropout
    masks), ReduceLROnPlateau's counters and the count of learning-rate drops. A resumed
    run then trains exactly as an uninterrupted one. Place it after the callbacks whose
    state it keeps."""

    _PLATEAU_FIELDS = ("best", "wait", "cooldown_counter")

    def __init__(self, backup_dir: str, plateau: keras.callbacks.ReduceLROnPlateau,
                 stopper: StopAfterLearningRateDrops):
        super().__init__()
        self.backup_dir = backup_dir
        self.plateau = plateau
        self.stopper = stopper
        self.path = os.path.join(backup_dir, "resume_state.json")

    def _generators(self) -> dict[str, keras.random.SeedGenerator]:
        return {
            layer.name: layer.seed_generator
            for layer in self.model.layers
            if isinstance(getattr(layer, "seed_generator", None), keras.random.SeedGenerator)
        }

    def on_train_begin(self, logs=None):
        resumed_epoch = backed_up_epoch(self.backup_dir)
        if not (os.path.exists(self.path) and resumed_epoch):
            return
        with open(self.path, encoding="utf8") as file:
            saved = json.load(file)
        if saved["epoch"] != resumed_epoch:
            print(f"Saved training state is of epoch {saved['epoch']}, the checkpoint of "
                  f"epoch {resumed_epoch}: the resumed run will differ from an "
                  "uninterrupted one.")
            return
        for name, generator in self._generators().items():
            generator.state.assign(saved["random"][name])
        for field in self._PLATEAU_FIELDS:
            setattr(self.plateau, field, saved["plateau"][field])
        self.stopper.drops = saved["drops"]
        self.stopper.last_rate = saved["last_rate"]

    def on_epoch_end(self, epoch, logs=None):
        state = {
            "epoch": epoch + 1,
            "random": {
                name: keras.ops.convert_to_numpy(generator.state.value).tolist()
                for name, generator in self._generators().items()
            },
            "plateau": {field: _json_number(getattr(self.plateau, field, None))
                        for field in self._PLATEAU_FIELDS},
            "drops": self.stopper.drops,
            "last_rate": self.stopper.last_rate,
        }
        os.makedirs(self.backup_dir, exist_ok=True)
        partial = self.path + ".partial"
        with open(partial, "w", encoding="utf8") as file:
            json.dump(state, file)
        os.replace(partial, self.path)


def backed_up_epoch(backup_dir: str) -> int:
    """The epoch BackupAndRestore resumes from in `backup_dir` (0 without a backup)."""
    metadata = os.path.join(backup_dir, "training_metadata.json")
    if not os.path.exists(metadata):
        return 0
    with open(metadata, encoding="utf8") as file:
        return int(json.load(file)["epoch"])


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
        epoch = float(backed_up_epoch(self.backup_dir))
        # ReduceOp has only SUM and MEAN: all equal <=> n * sum(e^2) == sum(e)^2.
        totals = self.strategy.reduce("SUM", self.strategy.run(
            lambda: tf.constant([1.0, epoch, epoch * epoch], tf.float64)), axis=None)
        count, total, squares = (float(value) for value in totals.numpy())
        if count * squares != total * total:
            raise RuntimeError(
                f"this worker resumes from epoch {int(epoch)} ({self.backup_dir}), but the "
                f"workers disagree (mean epoch {total / count:g}): give every worker the same "
                "backup (copy the chief's backup/ into each worker's directory) or remove "
                "them all to start again.")


def _json_number(value):
    return None if value is None else float(value)


class EpochCounter(keras.callbacks.Callback):
    """Holds the current epoch in an int64 variable that `keras_vgg.data.train_dataset(...,
    epoch=counter.variable)` reads, set at each epoch's start (also the first epoch of a
    resumed run): the data of epoch k no longer depends on how many epochs this process
    has iterated, which BackupAndRestore's resumption needs."""

    def __init__(self):
        super().__init__()
        with tf.device("/cpu:0"):
            self.variable = tf.Variable(0, dtype=tf.int64, trainable=False, name="data_epoch")

    def on_epoch_begin(self, epoch, logs=None):
        self.variable.assign(epoch)


class Throughput(keras.callbacks.Callback):
    """Adds `images_per_second` over the epoch's training steps (validation excluded)."""

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
        elapsed = self._last - self._start
        if logs is not None and elapsed > 0:
            logs["images_per_second"] = self._steps * self.global_batch_size / elapsed


class LossDiverged(RuntimeError):
    """The training loss became NaN or infinite."""


class StopOnNaN(keras.callbacks.Callback):
    """Ends training at the first NaN/Inf loss by raising `LossDiverged`, which names the
    step. Raising (rather than `stop_training`) keeps Keras from finishing the epoch, so
    BackupAndRestore keeps the checkpoint of the last completed epoch (and a rerun resumes
    from it); the same weights are also in `last_good.weights.h5`."""

    def __init__(self, last_good_path: str):
        super().__init__()
        self.last_good_path = last_good_path

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            raise LossDiverged(
                f"the loss became {loss} at step {batch}: stopped. The last good weights are "
                f"in {self.last_good_path}; lower --learning_rate or check the data."
            )

    def on_epoch_end(self, epoch, logs=None):
        self.model.save_weights(self.last_good_path)


def callbacks(
    model_dir: str,
    *,
    global_batch_size: int,
    patience: int = 2,
    max_drops: int = PAPER_LR_DROPS,
    strategy: tf.distribute.Strategy | None = None,
) -> list[keras.callbacks.Callback]:
    """Backup/restore, the paper's schedule, NaN stop, throughput, TensorBoard and CSV logs,
    all under `model_dir`; with a multi-worker `strategy`, the check that every worker
    resumes from the same epoch."""
    os.makedirs(model_dir, exist_ok=True)
    backup_dir = os.path.join(model_dir, "backup")
    plateau = keras.callbacks.ReduceLROnPlateau(
        monitor="val_accuracy", mode="max", factor=LR_DROP_FACTOR, patience=patience,
        min_delta=1e-4, verbose=1,
    )
    stopper = StopAfterLearningRateDrops(max_drops)
    # BackupAndRestore saves after the schedule has acted on the epoch, so the checkpoint's
    # learning rate and ResumeStateBackup's counters describe the same moment.
    return [
        Throughput(global_batch_size),
        StopOnNaN(os.path.join(model_dir, "last_good.weights.h5")),
        plateau,
        stopper,
        keras.callbacks.BackupAndRestore(backup_dir),
        *([WorkersResumeTogether(strategy, backup_dir)]
          if strategy is not None and is_multi_worker(strategy) else []),
        ResumeStateBackup(backup_dir, plateau, stopper),
        keras.callbacks.CSVLogger(os.path.join(model_dir, "history.csv"), append=True),
        keras.callbacks.TensorBoard(os.path.join(model_dir, "logs")),
    ]

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


def strategy_from_environment() -> tf.distribute.Strategy:
    """MultiWorkerMirroredStrategy when TF_CONFIG names several workers, MirroredStrategy
    over the visible GPUs, else the default (single-device) strategy."""
    cluster = json.loads(os.environ.get("TF_CONFIG", "{}")).get("cluster", {})
    if len(cluster.get("worker", [])) > 1:
        return tf.distribute.MultiWorkerMirroredStrategy()
    if tf.config.list_logical_devices("GPU"):
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


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
        self._last_rate = None

    def _rate(self) -> float:
        return float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))

    def on_train_begin(self, logs=None):
        self._last_rate = self._rate()

    def on_epoch_end(self, epoch, logs=None):
        rate = self._rate()
        if rate < self._last_rate:
            if self.drops == self.max_drops:
                self.model.optimizer.learning_rate = self._last_rate
                print(f"\nValidation accuracy stopped improving after {self.drops} "
                      "learning-rate drops: stopping, as the paper does.")
                self.model.stop_training = True
                return
            self.drops += 1
        self._last_rate = rate


class Throughput(keras.callbacks.Callback):
    """Adds `images_per_second` (training steps only) to each epoch's logs."""

    def __init__(self, global_batch_size: int):
        super().__init__()
        self.global_batch_size = global_batch_size

    def on_epoch_begin(self, epoch, logs=None):
        self._start, self._steps = time.perf_counter(), 0

    def on_train_batch_end(self, batch, logs=None):
        self._steps = batch + 1

    def on_epoch_end(self, epoch, logs=None):
        elapsed = time.perf_counter() - self._start
        if logs is not None and elapsed > 0:
            logs["images_per_second"] = self._steps * self.global_batch_size / elapsed


class StopOnNaN(keras.callbacks.Callback):
    """Stops at the first NaN/Inf loss with a message that says so. The weights of the last
    completed epoch stay in the BackupAndRestore checkpoint and in `last_good.weights.h5`."""

    def __init__(self, last_good_path: str):
        super().__init__()
        self.last_good_path = last_good_path
        self.stopped_on_nan = False

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            print(f"\nThe loss became {loss} at step {batch}: stopping. The last good weights "
                  f"are in {self.last_good_path}; lower --learning_rate or check the data.")
            self.stopped_on_nan = True
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        if not self.stopped_on_nan:
            self.model.save_weights(self.last_good_path)


def callbacks(
    model_dir: str,
    *,
    global_batch_size: int,
    patience: int = 2,
    max_drops: int = PAPER_LR_DROPS,
) -> list[keras.callbacks.Callback]:
    """Backup/restore, the paper's schedule, NaN stop, throughput, TensorBoard and CSV logs,
    all under `model_dir`."""
    os.makedirs(model_dir, exist_ok=True)
    return [
        keras.callbacks.BackupAndRestore(os.path.join(model_dir, "backup")),
        Throughput(global_batch_size),
        StopOnNaN(os.path.join(model_dir, "last_good.weights.h5")),
        keras.callbacks.ReduceLROnPlateau(
            monitor="val_accuracy", mode="max", factor=LR_DROP_FACTOR, patience=patience,
            min_delta=1e-4, verbose=1,
        ),
        StopAfterLearningRateDrops(max_drops),
        keras.callbacks.CSVLogger(os.path.join(model_dir, "history.csv"), append=True),
        keras.callbacks.TensorBoard(os.path.join(model_dir, "logs")),
    ]

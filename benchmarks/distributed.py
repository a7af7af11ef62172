"""keras_vgg VGG16 training under MirroredStrategy over 1 and over 4 logical CPU devices.

The same global batch (16 at 224) is split over the replicas; on one CPU this checks the
overhead of distribution (the replicas share the cores), not a speed-up. Both strategies
live in one process, over the 4 logical devices it splits its CPU into at start. Steps run
through `model.fit` on a repeated in-memory batch, as the training recipe runs them
(`train_on_batch` re-distributes its input on every call, which costs more than the step).

    python -m benchmarks.distributed [--steps=1] [--quick]
"""

from __future__ import annotations

import sys
import time

import keras
import tensorflow as tf
from absl import app, flags

from benchmarks import common, report

FLAGS = flags.FLAGS
flags.DEFINE_integer("steps", 1, "Timed steps per strategy, after one untimed step (the "
                     "fastest is kept).", lower_bound=1)

REPLICAS = (1, 4)


class StepTimer(keras.callbacks.Callback):
    """Seconds of each training step, from its start to its end."""

    def __init__(self):
        super().__init__()
        self.seconds: list[float] = []

    def on_train_batch_begin(self, batch, logs=None):
        self._start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)


def main(argv):
    del argv
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * max(REPLICAS))
    batch, side = common.shape(FLAGS.quick)
    batch *= 2 if FLAGS.quick else 1  # at least one image per replica
    batches = tf.data.Dataset.from_tensors(common.batch_data(batch, side)).repeat()
    rates = {}

    def name(replicas: int) -> str:
        return f"MirroredStrategy, {replicas} CPU device(s)"

    for replicas in REPLICAS:
        strategy = tf.distribute.MirroredStrategy([f"/cpu:{i}" for i in range(replicas)])
        with strategy.scope():
            model = common.compiled(common.build(
                "keras_vgg", "float32", side,
                width_multiplier=common.QUICK_WIDTH if FLAGS.quick else 1.0))
        timer = StepTimer()
        model.fit(batches, steps_per_epoch=1 + FLAGS.steps, epochs=1, verbose=0,
                  callbacks=[timer])
        rates[name(replicas)] = batch / min(timer.seconds[1:])
        print(f"{name(replicas)}: {rates[name(replicas)]:.1f}/s", file=sys.stderr, flush=True)
    table = common.ratio_table(rates, name(REPLICAS[0]), what="keras_vgg training step")
    print(table)
    if not FLAGS.quick:
        report.write_section(
            "VGG16 training under MirroredStrategy",
            f"python -m benchmarks.distributed --steps={FLAGS.steps}",
            f"keras_vgg VGG16, random weights, global batch {batch} at {side}x{side} split over "
            f"1 or 4 logical devices of this CPU (the replicas share its cores: a check of the "
            f"distribution overhead, not a speed-up), through `model.fit`; fastest of "
            f"{FLAGS.steps} step(s) after one untimed step.\n\n{table}\n",
        )


if __name__ == "__main__":
    app.run(main)

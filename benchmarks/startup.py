"""Time to a ready VGG16 with weights, keras_vgg against keras.applications.

What `keras_vgg.VGG16(weights=...)`, and `keras-vgg-predict`, `-eval` and `-export` through
it, pay before their first image: the network built and its weights loaded from a file
(Keras' layout, written here from random weights: nothing is downloaded), then keras_vgg's
fully-convolutional form for dense evaluation (Sect. 3.2), which keras.applications does
not have. Seconds, the median and the fastest of alternating rounds in one process, the
file in the page cache: a load's time varies from round to round by a factor of two or
more, on this 2-core machine.

    python -m benchmarks.startup [--rounds=15] [--quick]
"""

from __future__ import annotations

import gc
import os
import statistics
import tempfile
import time

import keras
from absl import app, flags

from benchmarks import common, report

FLAGS = flags.FLAGS
flags.DEFINE_integer("rounds", 15, "Timed rounds of each step (the median is kept); "
                     "one with --quick.",
                     lower_bound=1)

OURS = "keras_vgg.VGG16(weights=file)"
DENSE_FORM = "keras_vgg.dense.fully_convolutional(model)"


def main(argv):
    del argv
    import keras_vgg
    from keras_vgg import dense

    _, side = common.shape(FLAGS.quick)
    shape = (side, side, 3)
    rounds = 1 if FLAGS.quick else FLAGS.rounds
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "vgg16.weights.h5")
        common.build("keras.applications", "float32", side).save_weights(path)
        builders = {
            "keras.applications.VGG16(weights=file)":
                lambda: keras.applications.VGG16(weights=path, input_shape=shape),
            OURS: lambda: keras_vgg.VGG16(weights=path, input_shape=shape),
        }
        seconds = {name: [] for name in (*builders, DENSE_FORM)}
        for _ in range(rounds):
            for name, build in builders.items():
                keras.backend.clear_session()
                gc.collect()  # the last round's models freed before the clock starts
                start = time.perf_counter()
                model = build()
                seconds[name].append(time.perf_counter() - start)
                if name == OURS:  # its dense form, which the peer does not have
                    start = time.perf_counter()
                    dense.fully_convolutional(model)
                    seconds[DENSE_FORM].append(time.perf_counter() - start)
                del model
    table = "\n".join(["| step | median (s) | fastest (s) |", "|---|---|---|"] + [
        f"| {name} | {statistics.median(times):.2f} | {min(times):.2f} |"
        for name, times in seconds.items()])
    print(table)
    if not FLAGS.quick:
        report.write_section(
            "VGG16 start-up",
            f"python -m benchmarks.startup --rounds={FLAGS.rounds}",
            f"VGG16 with its head at {side}x{side}, built and loaded from a Keras weights "
            f"file (random weights); the median and the fastest of {FLAGS.rounds} "
            "alternating rounds in one process. keras_vgg builds a net whose every weight a "
            "file replaces without drawing random ones first, and copies the head into its "
            "convolutional form on the backend.\n\n"
            f"{table}\n",
        )


if __name__ == "__main__":
    app.run(main)

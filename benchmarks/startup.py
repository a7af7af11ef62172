"""Time to a ready VGG16 with weights, keras_vgg against keras.applications.

What `keras_vgg.VGG16(weights=...)`, and `keras-vgg-predict`, `-eval` and `-export` through
it, pay before their first image: the network built and its weights loaded from a file
(Keras' layout, written here from random weights: nothing is downloaded), then keras_vgg's
fully-convolutional form for dense evaluation (Sect. 3.2), which keras.applications does
not have. Seconds, the median of alternating rounds in one process, the file in the page
cache.

    python -m benchmarks.startup [--rounds=5] [--quick]
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
flags.DEFINE_integer("rounds", 5, "Timed rounds of each step (the median is kept); "
                     "one with --quick.",
                     lower_bound=1)

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
            "keras_vgg.VGG16(weights=file)":
                lambda: keras_vgg.VGG16(weights=path, input_shape=shape),
        }
        seconds = {name: [] for name in (*builders, DENSE_FORM)}
        for _ in range(rounds):
            for name, build in builders.items():
                keras.backend.clear_session()
                gc.collect()  # the last round's models freed before the clock starts
                start = time.perf_counter()
                model = build()
                seconds[name].append(time.perf_counter() - start)
                if name.startswith("keras_vgg"):
                    start = time.perf_counter()
                    dense.fully_convolutional(model)
                    seconds[DENSE_FORM].append(time.perf_counter() - start)
                del model
    medians = {name: statistics.median(times) for name, times in seconds.items()}
    table = "\n".join(["| step | seconds |", "|---|---|"]
                      + [f"| {name} | {value:.2f} |" for name, value in medians.items()])
    print(table)
    if not FLAGS.quick:
        report.write_section(
            "VGG16 start-up",
            f"python -m benchmarks.startup --rounds={FLAGS.rounds}",
            f"VGG16 with its head at {side}x{side}, built and loaded from a Keras weights "
            f"file (random weights); median of {FLAGS.rounds} alternating rounds in one "
            "process. keras_vgg builds a net whose every weight a file replaces without "
            "drawing random ones first, and copies the head into its convolutional form on "
            "the backend.\n\n"
            f"{table}\n",
        )


if __name__ == "__main__":
    app.run(main)

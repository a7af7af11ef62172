"""Batch-1 latency of the exported SavedModel against calling the Keras model directly.

Full-size VGG16 (random weights; latency does not depend on them), exported with Q=384.
For a 224x224 and a 384x384 uint8 image, each path does the same work (rescale to shorter
side Q, caffe preprocessing, the fully-convolutional net, spatial average, softmax):
  SavedModel  `tf.saved_model.load(...).signatures["serving_default"]`, as TF-Serving runs it
  Keras       `keras_vgg.fully_convolutional(model)` called eagerly on the rescaled,
              preprocessed image (what a Keras user would write)
`--calls` timed calls per path and size, alternating, after two warm-up calls.

    python -m benchmarks.serving [--quick]
"""

from __future__ import annotations

import sys
import tempfile
import time

import numpy as np
import tensorflow as tf
from absl import app, flags

import keras_vgg
from benchmarks import report
from keras_vgg import dense, image_ops, imagenet, serving

FLAGS = flags.FLAGS
flags.DEFINE_bool("quick", False, "Smoke run: a narrow net at 64 px, BENCHMARKS.md untouched.")
flags.DEFINE_integer("calls", 10, "Timed calls per path and image size.")


def main(argv):
    del argv
    crop, q, sizes, width = (64, 96, (64, 96), 1 / 16) if FLAGS.quick else (
        224, 384, (224, 384), 1.0)
    calls = 3 if FLAGS.quick else FLAGS.calls
    model = keras_vgg.vgg("D", weights=None, input_shape=(crop, crop, 3), width_multiplier=width)
    net = dense.fully_convolutional(model)
    with tempfile.TemporaryDirectory() as base:
        path = serving.export_saved_model(model, base, model_name="vgg16", warmup=False,
                                          options=serving.ServingOptions(test_scale=q))
        signature = tf.saved_model.load(path).signatures[serving.SIGNATURE_PIXELS]

        def saved_model(image):
            return signature(images=image)["probabilities"].numpy()

        def keras_direct(image):
            x = imagenet.preprocess_input(image_ops.rescale_shorter_side(image, q))
            return net(x, training=False)[dense.PROBABILITIES].numpy()

        paths = {"SavedModel": saved_model, "Keras": keras_direct}
        rng = np.random.default_rng(0)
        images = {s: tf.constant(rng.integers(0, 256, (1, s, s, 3), np.uint8)) for s in sizes}
        latencies = {(name, s): [] for name in paths for s in sizes}
        for image in images.values():
            np.testing.assert_allclose(saved_model(image), keras_direct(image), atol=1e-5)
            for run in paths.values():
                run(image)  # warm-up
        for call in range(calls):
            for (name, s), samples in latencies.items():
                start = time.perf_counter()
                paths[name](images[s])
                samples.append(time.perf_counter() - start)
            print(f"call {call + 1}/{calls}", file=sys.stderr, flush=True)
    rows = ["| image | path | p50 latency (ms) | p99 latency (ms) | speed vs Keras (p50) |",
            "|---|---|---|---|---|"]
    for s in sizes:
        keras_p50 = np.percentile(latencies[("Keras", s)], 50)
        for name in paths:
            p50, p99 = np.percentile(latencies[(name, s)], [50, 99])
            rows.append(f"| {s}x{s} | {name} | {1e3 * p50:.1f} | {1e3 * p99:.1f} | "
                        f"{keras_p50 / p50:.2f}x |")
    table = "\n".join(rows)
    print(table)
    if not FLAGS.quick:
        report.write_section(
            "Serving latency (batch 1)",
            f"python -m benchmarks.serving --calls={calls}",
            f"VGG16 (full size, random weights) exported with Q={q}; both paths rescale the "
            f"image to Q, preprocess and run dense evaluation; {calls} timed calls per row "
            f"after warm-up (p99 of {calls} samples is close to the maximum).\n\n{table}\n",
        )


if __name__ == "__main__":
    app.run(main)

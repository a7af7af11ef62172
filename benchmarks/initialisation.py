"""Which initialisation trains every network of Table 1 from scratch: the training loss of
each config under each reading of the paper's initialisation, at full size (224 crops,
1000 classes, dropout 0.5, weight decay 5e-4), with the recipe's default learning rate for
the batch (0.01 x batch / 256) and SGD with momentum 0.9.

The batch is fixed: the scikit-image photographs, rescaled to S = 256 and centre-cropped,
one class each. A net that can learn drives that loss down within a few steps; one that
cannot stays at ln(1000) = 6.9 (its signal vanishes on the way through the layers) or
blows up. The readings of "zero mean and 10^-2 variance":
  gaussian   N(0, 0.01^2): Caffe's and AlexNet's standard deviation 0.01 (our "gaussian")
  literal    N(0, 0.1^2): variance 10^-2 read literally (config A only: it diverges)
  glorot     Glorot & Bengio's uniform initialisation, which the paper's closing note
             says made the pre-training of the deeper nets unnecessary
  he         He et al.'s normal initialisation (2015, after the paper), the usual choice
             for ReLU nets, for comparison

    python -m benchmarks.initialisation [--steps=60] [--quick]
"""

from __future__ import annotations

import concurrent.futures
import math
import multiprocessing
import sys

import keras
import numpy as np
import tensorflow as tf
from absl import app, flags

import keras_vgg
from benchmarks import report
from benchmarks.photos import imagenet_like_jpegs
from keras_vgg import image_ops, runs, tasks

FLAGS = flags.FLAGS
flags.DEFINE_integer("steps", 60, "SGD steps per network and initialisation.", lower_bound=1)
flags.DEFINE_bool("quick", False, "Smoke run: config A under each initialisation and E "
                  "under Glorot's, at 1/16 width, 32 px crops, 2 steps, BENCHMARKS.md "
                  "untouched.")

CONFIGS = ("A", "A-LRN", "B", "C", "D", "E")
INITIALISATIONS = ("gaussian", "literal", "glorot", "he")
CLASSES = 1000


def photo_batch(crop_size: int) -> tuple[np.ndarray, np.ndarray]:
    """The photographs as one batch: `[n, crop, crop, 3]` caffe-preprocessed float32, and
    labels `[n]` (photograph i is class i)."""
    images = []
    for jpeg in imagenet_like_jpegs():
        image = image_ops.rescale_shorter_side(image_ops.decode_image(jpeg), runs.PAPER_SCALE)
        images.append(image_ops.central_crop(image, (crop_size, crop_size)))
    batch = keras_vgg.preprocess_input(tf.stack(images))
    return np.asarray(batch), np.arange(len(images))


def initializer(name: str):
    """The kernel initializer an `INITIALISATIONS` name stands for."""
    return {"literal": keras.initializers.RandomNormal(stddev=0.1),
            "he": "he_normal"}.get(name, name)


def cross_entropy(model: keras.Model, batch, labels) -> float:
    """Mean cross-entropy of the batch in test mode (no dropout, no weight decay)."""
    return float(keras.ops.mean(keras.losses.sparse_categorical_crossentropy(
        labels, model(batch, training=False))))


def measure(config: str, initialisation: str, batch, labels, *, steps: int, width: float):
    """(cross-entropy before, the training loss (cross-entropy + weight decay) at each of
    `steps` SGD steps, cross-entropy after)."""
    keras.utils.set_random_seed(0)
    model = keras_vgg.vgg(
        config, classes=CLASSES, input_shape=tuple(batch.shape[1:]), width_multiplier=width,
        kernel_initializer=initializer(initialisation), dropout=runs.PAPER_DROPOUT,
        kernel_regularizer=tasks.l2_for_weight_decay(runs.PAPER_WEIGHT_DECAY))
    tasks.compile_for_training(
        model, learning_rate=runs.scaled_learning_rate(tasks.PAPER_LEARNING_RATE,
                                                       len(labels)))
    before = cross_entropy(model, batch, labels)
    trace = []
    for _ in range(steps):
        loss = float(model.train_on_batch(batch, labels, return_dict=True)["loss"])
        trace.append(loss)
        if not math.isfinite(loss):
            break
    return before, trace, cross_entropy(model, batch, labels)


def measure_in_a_fresh_process(*args, **kwargs):
    """`measure` in a process of its own: one process building net after net keeps growing
    (a full-size net with its SGD state is ~1.6 GB) past the machine's memory."""
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as pool:
        return pool.submit(measure, *args, **kwargs).result()


def verdict(before: float, trace: list[float], after: float) -> str:
    if not all(math.isfinite(loss) for loss in trace):
        return f"diverged: NaN at step {len(trace)}"
    if before > 100 * math.log(CLASSES):
        return "diverges: starts far above ln(1000)"
    if after < 0.5 * min(before, math.log(CLASSES)):
        return "trains"
    return "stuck"


def main(argv):
    del argv
    width, crop, steps = (1 / 16, 32, 2) if FLAGS.quick else (1.0, image_ops.CROP_SIZE, FLAGS.steps)
    batch, labels = photo_batch(crop)
    run = measure if FLAGS.quick else measure_in_a_fresh_process  # narrow nets are small
    rows = [f"| config | initialisation | cross-entropy at start | training loss at step 1 | "
            f"step {steps // 2} | step {steps} | cross-entropy after | verdict |",
            "|---|---|---|---|---|---|---|---|"]
    for config in ("A", "E") if FLAGS.quick else CONFIGS:
        for name in INITIALISATIONS:
            if config != "A" and (name == "literal" or FLAGS.quick and name != "glorot"):
                continue
            before, trace, after = run(config, name, batch, labels, steps=steps, width=width)
            shown = [before] + [trace[i] if i < len(trace) else float("nan")
                                for i in (0, max(steps // 2 - 1, 0), steps - 1)] + [after]
            rows.append(f"| {config} | {name} | " + " | ".join(f"{v:.4g}" for v in shown)
                        + f" | {verdict(before, trace, after)} |")
            print(rows[-1], file=sys.stderr, flush=True)
    table = "\n".join(rows)
    print(table)
    if not FLAGS.quick:
        report.write_section(
            "Initialisation",
            f"python -m benchmarks.initialisation --steps={steps}",
            f"Each network at full size with {CLASSES} classes, dropout 0.5 and weight decay "
            f"5e-4, trained from scratch for {steps} SGD steps (momentum 0.9, learning rate "
            f"0.01 x {len(labels)}/256, the recipe's default for a batch of {len(labels)}) on "
            f"one fixed batch: the {len(labels)} scikit-image photographs at S=256, centre "
            f"{crop} crops, one class each. Cross-entropy: the batch in test mode (no dropout, "
            f"no weight decay) before and after the steps; ln(1000) = 6.91 is a uniform "
            f"guess. The training loss includes dropout and the weight decay term. 'trains': "
            f"the cross-entropy fell below half its start and half of ln(1000); 'stuck': it "
            f"did not. Each row runs in a fresh process.\n\n"
            f"{table}\n",
        )


if __name__ == "__main__":
    app.run(main)

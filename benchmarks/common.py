"""What the VGG16 benchmarks share: the models under test, a batch, compilation, and
alternating timed rounds (absolute times on shared CPUs are noise; ratios measured side by
side in one process are the result).

Entry points, each writing its own BENCHMARKS.md section:
  python -m benchmarks.inference     keras_vgg vs keras.applications, float32 and bf16
  python -m benchmarks.startup       the same pair, built with weights from a file
  python -m benchmarks.training      the same pair, one SGD step
  python -m benchmarks.distributed   keras_vgg training under MirroredStrategy, 1 vs 4 devices
  python -m benchmarks.gpu_training  one GPU, mixed precision, XLA off/on (GPU machines only)
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf
from absl import flags

flags.DEFINE_bool("quick", False, "Smoke run: 32 px images, a batch of 2 (4 with 4 replicas; "
                 "a 1/16-width net where no peer is timed), BENCHMARKS.md untouched.")

BATCH, SIZE = 16, 224  # a batch of 16 at the paper's 224 px crop
QUICK_BATCH, QUICK_SIZE = 2, 32  # --quick: a smoke run
QUICK_WIDTH = 1 / 16  # --quick, where no peer is timed: 4..32 filters, 256 units
LIBRARIES = ("keras.applications", "keras_vgg")


def shape(quick: bool) -> tuple[int, int]:
    """(batch, image side) of this run."""
    return (QUICK_BATCH, QUICK_SIZE) if quick else (BATCH, SIZE)


def build(library: str, policy: str, side: int, width_multiplier: float = 1.0) -> keras.Model:
    """VGG16 with its head, random weights, `side` px input, under dtype `policy`; keras_vgg's
    can be narrower (`width_multiplier`), for a smoke run of a benchmark that times no peer."""
    import keras_vgg

    keras.config.set_dtype_policy(policy)
    try:
        if library == "keras_vgg":
            return keras_vgg.VGG16(weights=None, input_shape=(side, side, 3),
                                   width_multiplier=width_multiplier)
        if width_multiplier != 1.0:
            raise ValueError(f"{library} has no width_multiplier")
        return keras.applications.VGG16(weights=None, input_shape=(side, side, 3))
    finally:
        keras.config.set_dtype_policy("float32")


def batch_data(batch: int, side: int, seed: int = 0) -> tuple[tf.Tensor, tf.Tensor]:
    """Images `[batch, side, side, 3]` float32 (preprocessed range) and labels `[batch]`."""
    rng = np.random.default_rng(seed)
    images = rng.uniform(-120, 120, (batch, side, side, 3)).astype("float32")
    return tf.constant(images), tf.constant(rng.integers(0, 1000, batch))


def compiled(model: keras.Model, jit_compile: bool | str = "auto") -> keras.Model:
    """`model` compiled for the training benchmarks: SGD with momentum 0.9 (the paper's)."""
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
                  loss="sparse_categorical_crossentropy", jit_compile=jit_compile)
    return model


def timed_rounds(runners: dict[str, Callable[[], object]], images_per_call: int, *,
                 rounds: int, steps: int) -> dict[str, float]:
    """Best images/s of each `runners[name]()` over alternating rounds of `steps` calls,
    after one untimed call each (tracing, warm-up)."""
    for run in runners.values():
        run()
    best = dict.fromkeys(runners, 0.0)
    for round_ in range(rounds):
        for name, run in runners.items():
            start = time.perf_counter()
            for _ in range(steps):
                run()
            best[name] = max(best[name], steps * images_per_call / (time.perf_counter() - start))
        print(f"round {round_ + 1}/{rounds}: " + ", ".join(
            f"{name} {rate:.1f}/s" for name, rate in best.items()), file=sys.stderr, flush=True)
    return best


def ratio_table(rates: dict[str, float], baseline: str, *, what: str) -> str:
    """A markdown table of images/s and each rate's ratio to `rates[baseline]`."""
    rows = [f"| {what} | images/s | vs {baseline} |", "|---|---|---|"]
    rows += [f"| {name} | {rate:.1f} | {rate / rates[baseline]:.2f}x |"
             for name, rate in rates.items()]
    return "\n".join(rows)

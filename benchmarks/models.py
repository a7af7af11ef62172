"""VGG16 inference and training throughput: keras_vgg against keras.applications, side by
side in one process (absolute times on shared CPUs are noise; the ratios are the result).

  inference  images/s of `model(x, training=False)` in one `tf.function`, batch 16 at 224,
             float32 and under the `mixed_bfloat16` policy (bfloat16 compute, float32
             variables; fast on CPUs with AVX512-BF16 or AMX, and on GPUs)
  training   images/s of `train_on_batch` with SGD (momentum 0.9), batch 16 at 224, both
             models compiled the same way; then keras_vgg under MirroredStrategy with 1 and
             4 logical CPU devices (each in its own process: devices are fixed at start)

  gpu        only where a GPU is visible: keras_vgg VGG16 training images/s on one GPU under
             `mixed_bfloat16`, with and without XLA (`jit_compile`), and the fraction of the
             GPU's dense bf16 peak it reaches (VGG16: 15.5 GFLOPs forward per 224 image,
             about 3x that per training image)

Each variant runs `--rounds` times, alternating, and keeps its best round.

    python -m benchmarks.models [--quick]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

from benchmarks import report  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_bool("quick", False, "Smoke run: 32 px images, batch 2, BENCHMARKS.md untouched.")
flags.DEFINE_integer("rounds", 2, "Timed rounds per variant (the best is kept).")
flags.DEFINE_integer("steps", 1, "Batches per round.")
flags.DEFINE_integer("mirrored_replicas", 0, "Internal: measure training under "
                     "MirroredStrategy with this many logical CPU devices, print JSON.")

BATCH, SIZE = 16, 224
TRAINING_GFLOPS_PER_IMAGE = 3 * 15.5  # VGG16 forward at 224 is 15.5 GFLOPs (multiply-adds x2)
# Dense bf16 tensor-core peaks from the vendors' data sheets, TFLOP/s (no sparsity).
GPU_BF16_PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L4": 121.0}
GPU_BATCH = 64


def shape() -> tuple[int, int]:
    """(batch, image side) of this run."""
    return (2, 32) if FLAGS.quick else (BATCH, SIZE)


def build(library: str, policy: str) -> keras.Model:
    """VGG16 with its head, random weights, under `policy`."""
    import keras_vgg

    keras.config.set_dtype_policy(policy)
    try:
        builder = keras_vgg.VGG16 if library == "keras_vgg" else keras.applications.VGG16
        return builder(weights=None, input_shape=(shape()[1], shape()[1], 3))
    finally:
        keras.config.set_dtype_policy("float32")


def batch_data(seed: int = 0):
    batch, side = shape()
    rng = np.random.default_rng(seed)
    images = rng.uniform(-120, 120, (batch, side, side, 3)).astype("float32")
    return tf.constant(images), tf.constant(rng.integers(0, 1000, batch))


def timed_rounds(runners: dict, images_per_call: int) -> dict[str, float]:
    """Best images/s of each `runners[name]()` over alternating rounds of `--steps` calls."""
    for run in runners.values():  # trace and warm up
        run()
    best = dict.fromkeys(runners, 0.0)
    for round_ in range(FLAGS.rounds):
        for name, run in runners.items():
            start = time.perf_counter()
            for _ in range(FLAGS.steps):
                run()
            rate = FLAGS.steps * images_per_call / (time.perf_counter() - start)
            best[name] = max(best[name], rate)
        print(f"round {round_ + 1}/{FLAGS.rounds}: " + ", ".join(
            f"{name} {rate:.1f}/s" for name, rate in best.items()), file=sys.stderr, flush=True)
    return best


def inference() -> dict[str, float]:
    images, _ = batch_data()
    runners = {}
    for policy in ("float32", "mixed_bfloat16"):
        for library in ("keras.applications", "keras_vgg"):
            model = build(library, policy)
            forward = tf.function(lambda x, model=model: model(x, training=False))
            runners[f"{library} {policy}"] = lambda f=forward: f(images).numpy()
    return timed_rounds(runners, shape()[0])


def compiled(model: keras.Model, jit_compile: bool | str = "auto") -> keras.Model:
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
                  loss="sparse_categorical_crossentropy", jit_compile=jit_compile)
    return model


def training() -> dict[str, float]:
    images, labels = batch_data()
    runners = {}
    for library in ("keras.applications", "keras_vgg"):
        model = compiled(build(library, "float32"))
        runners[library] = lambda m=model: m.train_on_batch(images, labels)
    return timed_rounds(runners, shape()[0])


def gpu_training() -> tuple[str, dict[str, float]] | None:
    """(GPU name, {variant: images/s}) of mixed-precision training on one GPU, or None."""
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return None
    name = tf.config.experimental.get_device_details(gpus[0]).get("device_name", "GPU")
    images, labels = batch_data()
    images = tf.concat([images] * (GPU_BATCH // shape()[0]), 0)
    labels = tf.concat([labels] * (GPU_BATCH // shape()[0]), 0)
    runners = {}
    for xla in (False, True):
        model = compiled(build("keras_vgg", "mixed_bfloat16"), jit_compile=xla)
        runners[f"mixed_bfloat16, XLA {'on' if xla else 'off'}"] = (
            lambda m=model: m.train_on_batch(images, labels))
    return name, timed_rounds(runners, GPU_BATCH)


def mirrored_training(replicas: int) -> float:
    """images/s of keras_vgg training under MirroredStrategy over `replicas` CPU devices."""
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * replicas)
    strategy = tf.distribute.MirroredStrategy([f"/cpu:{i}" for i in range(replicas)])
    with strategy.scope():
        model = compiled(build("keras_vgg", "float32"))
    images, labels = batch_data()
    return timed_rounds({f"{replicas} replicas": lambda: model.train_on_batch(images, labels)},
                        shape()[0])[f"{replicas} replicas"]


def mirrored_in_subprocess(replicas: int) -> float:
    command = [sys.executable, "-m", "benchmarks.models", f"--mirrored_replicas={replicas}",
               f"--rounds={FLAGS.rounds}", f"--steps={FLAGS.steps}", f"--quick={FLAGS.quick}"]
    result = subprocess.run(command, capture_output=True, text=True, check=False,
                            cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])["images_per_second"]


def main(argv):
    del argv
    if FLAGS.mirrored_replicas:
        print(json.dumps({"images_per_second": mirrored_training(FLAGS.mirrored_replicas)}))
        return
    batch, side = shape()
    inferred = inference()
    trained = training()
    for replicas in (1, 4):
        trained[f"keras_vgg, MirroredStrategy {replicas} CPU device(s)"] = (
            mirrored_in_subprocess(replicas))
    base_inference = inferred["keras.applications float32"]
    base_training = trained["keras.applications"]
    rows = ["| measurement | images/s | vs keras.applications float32 |", "|---|---|---|"]
    rows += [f"| inference, {name} | {rate:.1f} | {rate / base_inference:.2f}x |"
             for name, rate in inferred.items()]
    rows += [f"| training step, {name} | {rate:.1f} | {rate / base_training:.2f}x |"
             for name, rate in trained.items()]
    table = "\n".join(rows)
    gpu = gpu_training()
    if gpu is None:
        table += "\n\nGPU training: not measured, no GPU is visible on this machine."
    else:
        name, rates = gpu
        peak = next((v for k, v in GPU_BF16_PEAK_TFLOPS.items() if k in name), None)
        table += (f"\n\n| GPU training ({name}, batch {GPU_BATCH}, {side} px) | images/s | "
                  "fraction of bf16 peak |\n|---|---|---|\n")
        table += "\n".join(
            f"| {variant} | {rate:.0f} | " + (
                f"{rate * TRAINING_GFLOPS_PER_IMAGE / (peak * 1e3):.1%} |" if peak
                else "unknown peak |") for variant, rate in rates.items())
    print(table)
    if not FLAGS.quick:
        report.write_section(
            "VGG16 inference and training (per process)",
            f"python -m benchmarks.models --rounds={FLAGS.rounds} --steps={FLAGS.steps}",
            f"VGG16 with its head, random weights, batch {batch} at {side}x{side}; "
            f"inference through one `tf.function`, training with `train_on_batch` (SGD, "
            f"momentum 0.9) compiled the same way for both libraries; best of "
            f"{FLAGS.rounds} alternating rounds of {FLAGS.steps} batches. The MirroredStrategy "
            f"rows split the same global batch over 1 or 4 logical devices of this CPU (a "
            f"check of the distribution overhead, not a speed-up: the cores are shared).\n\n"
            f"{table}\n",
        )


if __name__ == "__main__":
    app.run(main)

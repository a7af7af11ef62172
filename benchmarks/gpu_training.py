"""keras_vgg VGG16 training and inference on one GPU under Keras' JAX backend, in bfloat16
(`mixed_bfloat16`) and float32, and the fraction of the chip's dense bf16 peak reached
(MFU). It needs no TensorFlow: the GPU machines this project is lent have JAX and no
TensorFlow (`benchmarks/gpu_on_device.sh` runs it there).

Work per image: the multiply-adds of the measured net's forward pass, as `keras_vgg.anatomy`
counts them (`python -m keras_vgg.anatomy D` for VGG16 at 224), 2 FLOPs each; a training
step is counted as 3 forward passes (the backward pass costs about two), inference as one.

On a machine where JAX sees no GPU it says so and leaves BENCHMARKS.md alone; `--quick`
runs a narrow net at 32 px on whatever device JAX has, as a smoke test.

    KERAS_BACKEND=jax python -m benchmarks.gpu_training [--batch_sizes=64,128,256]
        [--policies=mixed_bfloat16,float32] [--rounds=3] [--steps=10] [--quick]
"""

from __future__ import annotations

import logging
import os
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "jax")
# JAX logs each accelerator plugin it does not find (TPU on a GPU machine) at INFO level.
logging.getLogger("jax._src.xla_bridge").setLevel(logging.WARNING)

import jax  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_list("batch_sizes", ["64", "128", "256"], "Global batch sizes to measure.")
flags.DEFINE_list("policies", ["mixed_bfloat16", "float32"], "Keras dtype policies.")
flags.DEFINE_integer("rounds", 3, "Timed rounds per row (the best is kept).", lower_bound=1)
flags.DEFINE_integer("steps", 10, "Steps per round.", lower_bound=1)
flags.DEFINE_bool("quick", False, "Smoke run on any device: a 1/16-width VGG16 at 32 px, "
                  "batch 2, one policy; BENCHMARKS.md untouched.")

FORWARD_PASSES_PER_TRAINING_STEP = 3  # the backward pass costs about two forward passes
# Dense bf16 tensor-core peaks from the vendors' data sheets, TFLOP/s (no sparsity); the
# first key found in the device name wins, so the specific variants come first.
GPU_BF16_PEAK_TFLOPS = {"H100 PCIe": 756.0, "H100 NVL": 835.0, "H200": 989.0, "H100": 989.0,
                        "A100": 312.0, "L4": 121.0}
SECTION = "VGG16 training on one GPU (JAX)"


def build(policy: str, side: int, width_multiplier: float) -> keras.Model:
    """keras_vgg VGG16 with its head and random weights, compiled with the paper's SGD."""
    keras.config.set_dtype_policy(policy)
    try:
        model = vgg16(side, width_multiplier)
    finally:
        keras.config.set_dtype_policy("float32")
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
                  loss="sparse_categorical_crossentropy", jit_compile=True)
    return model


def best_rate(step, images_per_step: int) -> float:
    """Best images/s of `step()` over the rounds, after two untimed calls (compilation)."""
    step()
    step()
    best = 0.0
    for _ in range(FLAGS.rounds):
        start = time.perf_counter()
        for _ in range(FLAGS.steps):
            result = step()
        jax.block_until_ready(result)
        best = max(best, FLAGS.steps * images_per_step / (time.perf_counter() - start))
    return best


def forward_flops(side: int, width_multiplier: float) -> float:
    """FLOPs of one image's forward pass through the measured net: 2 per multiply-add, the
    multiply-adds counted by `keras_vgg.anatomy` from the built layers."""
    from keras_vgg import anatomy

    return 2.0 * sum(row.macs for row in anatomy.layer_rows(vgg16(side, width_multiplier)))


def vgg16(side: int, width_multiplier: float) -> keras.Model:
    """keras_vgg VGG16 with its head and random weights, in the current dtype policy."""
    import keras_vgg

    return keras_vgg.VGG16(weights=None, input_shape=(side, side, 3),
                           width_multiplier=width_multiplier)


def measure(policy: str, batch: int, side: int, width_multiplier: float
            ) -> tuple[float, float]:
    """(training, inference) images/s of one policy and batch, data already on the device."""
    model = build(policy, side, width_multiplier)
    rng = np.random.default_rng(0)
    images = jax.device_put(rng.uniform(-120, 120, (batch, side, side, 3)).astype("float32"))
    labels = jax.device_put(rng.integers(0, 1000, batch))
    training = best_rate(lambda: model.train_on_batch(images, labels), batch)
    inference = best_rate(lambda: model.predict_on_batch(images), batch)
    return training, inference


def table(rows, peak: float | None, flops_per_forward_pass: float) -> str:
    def mfu(rate, passes):
        if not peak:
            return "unknown peak"
        return f"{rate * passes * flops_per_forward_pass / (peak * 1e12):.1%}"

    lines = ["| policy | batch | training images/s | training MFU | inference images/s | "
             "inference MFU |", "|---|---|---|---|---|---|"]
    lines += [f"| {policy} | {batch} | {training:.0f} | "
              f"{mfu(training, FORWARD_PASSES_PER_TRAINING_STEP)} | {inference:.0f} | "
              f"{mfu(inference, 1)} |"
              for policy, batch, training, inference in rows]
    return "\n".join(lines)


def main(argv):
    del argv
    if keras.backend.backend() != "jax":
        raise SystemExit(f"gpu_training.py runs on Keras' JAX backend; KERAS_BACKEND is "
                         f"{keras.backend.backend()!r}")
    device = jax.devices()[0]
    if device.platform != "gpu" and not FLAGS.quick:
        # BENCHMARKS.md keeps whatever a GPU machine measured.
        print(f"Not measured: JAX sees no GPU on this machine (its device: {device}).")
        return
    name = getattr(device, "device_kind", str(device))
    peak = next((value for key, value in GPU_BF16_PEAK_TFLOPS.items() if key in name), None)
    if FLAGS.quick:
        settings, side, width = [(FLAGS.policies[0], 2)], 32, 1 / 16
    else:
        settings = [(policy, int(batch)) for policy in FLAGS.policies
                    for batch in FLAGS.batch_sizes]
        side, width = 224, 1.0
    rows = []
    for policy, batch in settings:
        training, inference = measure(policy, batch, side, width)
        print(f"{policy}, batch {batch}: training {training:.1f}/s, inference "
              f"{inference:.1f}/s", file=sys.stderr, flush=True)
        rows.append((policy, batch, training, inference))
    flops = forward_flops(side, width)
    result = table(rows, peak, flops)
    print(f"{name} ({device.platform}), {side} px:\n{result}")
    if not FLAGS.quick:
        from benchmarks import report

        report.write_section(
            SECTION,
            "KERAS_BACKEND=jax python -m benchmarks.gpu_training "
            f"--batch_sizes={','.join(FLAGS.batch_sizes)} --policies={','.join(FLAGS.policies)} "
            f"--rounds={FLAGS.rounds} --steps={FLAGS.steps}",
            f"Device: {name}, JAX {jax.__version__}, Keras {keras.__version__}. keras_vgg VGG16 "
            "(no dropout, as keras.applications), random weights, 224 px, the batch already on "
            "the device; training is `train_on_batch` with SGD (momentum 0.9), inference "
            f"`predict_on_batch`; best of {FLAGS.rounds} rounds of {FLAGS.steps} steps after "
            "two untimed ones. MFU: images/s x "
            f"{FORWARD_PASSES_PER_TRAINING_STEP * flops / 1e9:.1f} GFLOP per training image "
            f"({FORWARD_PASSES_PER_TRAINING_STEP} x 2 x {flops / 2e9:.2f} G multiply-adds, "
            f"counted by keras_vgg.anatomy) or {flops / 1e9:.2f} per inference image, "
            f"over the dense bf16 peak, {peak or 'unknown'} TFLOP/s, for every row.\n\n"
            f"{result}\n",
        )


if __name__ == "__main__":
    app.run(main)

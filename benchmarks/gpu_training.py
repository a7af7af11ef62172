"""keras_vgg VGG16 training on one GPU with mixed precision, XLA off and on, and the
fraction of the GPU's dense bfloat16 peak it reaches (VGG16 forward is 15.5 G
multiply-adds per 224 image, i.e. 31 GFLOPs; a training step about 3x that).

On a machine without a GPU it says so and leaves BENCHMARKS.md alone.

    python -m benchmarks.gpu_training [--rounds=3] [--steps=5] [--quick]
"""

from __future__ import annotations

import tensorflow as tf
from absl import app, flags

from benchmarks import common, report

FLAGS = flags.FLAGS
flags.DEFINE_integer("rounds", 3, "Timed rounds per variant (the best is kept).",
                     lower_bound=1)
flags.DEFINE_integer("steps", 5, "Steps per round.", lower_bound=1)

GPU_BATCH = 64
# VGG16 forward at 224: 15.47 G multiply-adds (python -m keras_vgg.anatomy D), i.e. 30.9
# GFLOPs, as the vendors count a multiply-add as two; backward costs about twice the forward.
TRAINING_GFLOPS_PER_IMAGE = 3 * 2 * 15.47
# Dense bf16 tensor-core peaks from the vendors' data sheets, TFLOP/s (no sparsity); the
# first key found in the device name wins, so the specific variants come first.
GPU_BF16_PEAK_TFLOPS = {"H100 PCIe": 756.0, "H100 NVL": 835.0, "H200": 989.0, "H100": 989.0,
                        "A100": 312.0, "L4": 121.0}


def measure(name: str) -> tuple[str, float | None]:
    """The table of images/s and fraction of peak, and the peak used (TFLOP/s)."""
    batch, side = common.shape(FLAGS.quick)
    batch = batch if FLAGS.quick else GPU_BATCH
    images, labels = common.batch_data(batch, side)
    runners = {}
    for xla in (False, True):
        model = common.compiled(common.build("keras_vgg", "mixed_bfloat16", side),
                                jit_compile=xla)
        runners[f"mixed_bfloat16, XLA {'on' if xla else 'off'}"] = (
            lambda m=model: m.train_on_batch(images, labels))
    rates = common.timed_rounds(runners, batch, rounds=FLAGS.rounds, steps=FLAGS.steps)
    peak = next((value for key, value in GPU_BF16_PEAK_TFLOPS.items() if key in name), None)
    rows = [f"| {name}, batch {batch} at {side}x{side} | images/s | fraction of bf16 peak |",
            "|---|---|---|"]
    rows += [f"| {variant} | {rate:.0f} | " + (
        f"{rate * TRAINING_GFLOPS_PER_IMAGE / (peak * 1e3):.1%} |" if peak else "unknown peak |")
        for variant, rate in rates.items()]
    return "\n".join(rows), peak


def main(argv):
    del argv
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        # BENCHMARKS.md keeps whatever a GPU machine measured.
        print("Not measured: no GPU is visible on this machine.")
        return
    name = tf.config.experimental.get_device_details(gpus[0]).get("device_name", "GPU")
    table, peak = measure(name)
    print(table)
    if not FLAGS.quick:
        report.write_section(
            "VGG16 training on one GPU",
            f"python -m benchmarks.gpu_training --rounds={FLAGS.rounds} --steps={FLAGS.steps}",
            f"keras_vgg VGG16, random weights, `train_on_batch` with SGD under `mixed_bfloat16`, "
            f"compiled without and with XLA; best of {FLAGS.rounds} alternating rounds of "
            f"{FLAGS.steps} steps. Fraction of peak: images/s x {TRAINING_GFLOPS_PER_IMAGE:.1f} "
            f"GFLOP per training image / {peak or 'unknown'} TFLOP/s.\n\n{table}\n",
        )


if __name__ == "__main__":
    app.run(main)

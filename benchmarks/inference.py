"""VGG16 inference throughput, keras_vgg against keras.applications, side by side.

images/s of `model(x, training=False)` in one `tf.function`, batch 16 at 224, in float32
and under the `mixed_bfloat16` policy (bfloat16 compute, float32 variables; fast on CPUs
with AVX512-BF16 or AMX, and on GPUs). Random weights: compute does not depend on them.

    python -m benchmarks.inference [--rounds=2] [--quick]
"""

from __future__ import annotations

import tensorflow as tf
from absl import app, flags

from benchmarks import common, report

FLAGS = flags.FLAGS
flags.DEFINE_integer("rounds", 2, "Timed rounds of one batch per variant (the best is kept).",
                     lower_bound=1)


def main(argv):
    del argv
    batch, side = common.shape(FLAGS.quick)
    images, _ = common.batch_data(batch, side)
    runners = {}
    for policy in ("float32", "mixed_bfloat16"):
        for library in common.LIBRARIES:
            model = common.build(library, policy, side)
            forward = tf.function(lambda x, model=model: model(x, training=False))
            runners[f"{library} {policy}"] = lambda f=forward: f(images).numpy()
    rates = common.timed_rounds(runners, batch, rounds=FLAGS.rounds, steps=1)
    table = common.ratio_table(rates, "keras.applications float32", what="inference")
    print(table)
    if not FLAGS.quick:
        report.write_section(
            "VGG16 inference",
            f"python -m benchmarks.inference --rounds={FLAGS.rounds}",
            f"VGG16 with its head, random weights, batch {batch} at {side}x{side}, through one "
            f"`tf.function`; best of {FLAGS.rounds} alternating rounds of one batch.\n\n"
            f"{table}\n",
        )


if __name__ == "__main__":
    app.run(main)

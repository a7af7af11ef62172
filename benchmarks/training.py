"""VGG16 training-step throughput, keras_vgg against keras.applications, side by side.

images/s of `train_on_batch` with SGD (momentum 0.9), batch 16 at 224, both models
compiled the same way. Random weights.

    python -m benchmarks.training [--rounds=2] [--quick]
"""

from __future__ import annotations

from absl import app, flags

from benchmarks import common, report

FLAGS = flags.FLAGS
flags.DEFINE_integer("rounds", 2, "Timed rounds of one step per library (the best is kept).",
                     lower_bound=1)


def main(argv):
    del argv
    batch, side = common.shape(FLAGS.quick)
    images, labels = common.batch_data(batch, side)
    runners = {}
    for library in common.LIBRARIES:
        model = common.compiled(common.build(library, "float32", side))
        runners[library] = lambda m=model: m.train_on_batch(images, labels)
    rates = common.timed_rounds(runners, batch, rounds=FLAGS.rounds, steps=1)
    table = common.ratio_table(rates, "keras.applications", what="training step")
    print(table)
    if not FLAGS.quick:
        report.write_section(
            "VGG16 training step",
            f"python -m benchmarks.training --rounds={FLAGS.rounds}",
            f"VGG16 with its head, random weights, batch {batch} at {side}x{side}, "
            f"`train_on_batch` with SGD (momentum 0.9), both compiled the same way; best of "
            f"{FLAGS.rounds} alternating round(s) of one step after one untimed step.\n\n"
            f"{table}\n",
        )


if __name__ == "__main__":
    app.run(main)

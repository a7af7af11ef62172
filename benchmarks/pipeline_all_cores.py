"""The input pipeline on every core of the machine: `keras_vgg.data.train_dataset` at its
defaults, as training iterates it, against torchvision's loaders with one DataLoader worker
process per core, on `benchmarks.pipeline`'s files and augmentation, in interleaved rounds.
`benchmarks.pipeline`'s per-core table is the one to compare designs by; this one says
which loader feeds a model faster on the whole machine.

    python -m benchmarks.pipeline_all_cores [--images=512] [--rounds=4] [--quick]
"""

from __future__ import annotations

import os
import sys
import tempfile

from absl import app

from benchmarks import pipeline, report
from benchmarks.photos import imagenet_like_jpegs
from keras_vgg import data

FLAGS = pipeline.FLAGS  # --images, --rounds, --torch_python and --quick are pipeline's
ROWS = ("train_dataset", "torchvision PIL", "torchvision decode_jpeg")


def main(argv):
    del argv
    count, rounds = (pipeline.BATCH, 1) if FLAGS.quick else (FLAGS.images, FLAGS.rounds)
    cores = len(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory() as root:
        folder = pipeline.write_folder(root, imagenet_like_jpegs(), count)
        dataset = data.train_dataset(f"folder:{folder}", global_batch_size=pipeline.BATCH,
                                     seed=0)
        if not FLAGS.quick:  # a quick run's figures are not reported: no warm-up
            pipeline.images_per_second(dataset, count)  # warm-up: trace, fill the file cache
        measured = {name: [] for name in ROWS}
        peers_missing = None
        for round_ in range(rounds):
            measured["train_dataset"].append(pipeline.images_per_second(dataset, count))
            peers = pipeline.peer_rates(folder, workers=cores)
            if isinstance(peers, str):
                peers_missing = peers
            else:
                for name in ROWS[1:]:
                    measured[name].append(peers[name])
            print(f"round {round_ + 1}/{rounds}: " + ", ".join(
                f"{name} {rates[-1]:.0f}/s" for name, rates in measured.items() if rates),
                file=sys.stderr)
    table = pipeline.table(measured, ROWS, peers_missing,
                           unit=f"images/s on {cores} cores")
    print(table)
    if not FLAGS.quick:
        report.write_section(
            "Input pipeline (all cores)",
            f"python -m benchmarks.pipeline_all_cores --images={count} --rounds={rounds} "
            f"--torch_python={FLAGS.torch_python}",
            f"The files and augmentation of the per-core table, on all {cores} cores: "
            "train_dataset at its defaults (tf.data's threads), and torchvision's loaders "
            f"with DataLoader(num_workers={cores}); {rounds} interleaved rounds.\n\n"
            + table + "\n",
        )


if __name__ == "__main__":
    app.run(main)

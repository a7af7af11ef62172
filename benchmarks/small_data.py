"""The defaults on a small data set, as `make demo` trains: which schedule, which rate, and
whether to freeze the trunk when fine-tuning.

The demo's run (config A at 1/8 width, 48 px crops of S in [54, 72], its 1,500 training and
400 held-out shape images, batch 32, seed 0) is trained from scratch under:
  defaults        the rate 0.01 x 32/256 and the schedule as shipped: a plateau is 2 epochs
                  and 500 steps without a gain, none counted at chance
  2 epochs        the same rate, a plateau being 2 epochs alone (the schedule before)
  2 epochs, gate  2 epochs, none counted at chance
  rate 0.01       the schedule as shipped, the paper's rate unscaled (0.01 at batch 32)
Then the defaults' net is fine-tuned onto the demo's four new shapes (40 training and 20
held-out images each, the default batch 4): all layers at the default rate (0.01 x 4/256,
the classifier being new), all layers at the paper's fine-tuning rate (0.001 x 4/256, for a
net whose every layer is loaded), or `freeze_convs`.

    python -m benchmarks.small_data [--epochs=25] [--fine_tune_epochs=40] [--quick]

(the demo's flags: 25 epochs from scratch, and 15 of fine-tuning unless given).
"""

from __future__ import annotations

import csv
import dataclasses
import os
import sys
import tempfile

from absl import app, flags

from benchmarks import report
from keras_vgg import callbacks, runs, tasks, training

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "recipes"))
import demo  # noqa: E402
import demo_data  # noqa: E402

FLAGS = flags.FLAGS  # demo.py's --epochs and --fine_tune_epochs, and:
flags.DEFINE_bool("quick", False, "Smoke run: 2 images a class, 1 epoch, the QUICK_ROWS, "
                  "BENCHMARKS.md untouched.")

SCHEDULES = {
    "defaults": {},
    "2 epochs": {"plateau_min_steps": 0, "_gate": False},
    "2 epochs, gate": {"plateau_min_steps": 0},
    "rate 0.01": {"learning_rate": 0.01},
}

# --quick trains one row of each code path: the schedule with its gate at chance and
# without, all layers and freeze_convs (the other rows change only a number).
QUICK_ROWS = ("defaults", "2 epochs", "all layers (default)", "freeze_convs")


def trained(config: runs.RunConfig, *, gate: bool = True
            ) -> tuple[training.TrainingResult | None, list[dict]]:
    """Trains `config` (None for a run that diverged); without `gate`, the schedule counts
    plateaus at chance too."""
    above_chance = callbacks.above_chance
    if not gate:
        callbacks.above_chance = lambda accuracy, classes, images: True
    try:
        result = training.train(config, verbose=0)
    except callbacks.LossDiverged:
        result = None
    finally:
        callbacks.above_chance = above_chance
    path = os.path.join(config.model_dir, "history.csv")
    if not os.path.exists(path):  # diverged in the first epoch
        return result, []
    with open(path, encoding="utf8") as file:
        return result, list(csv.DictReader(file))


def row(name: str, config: runs.RunConfig, result: training.TrainingResult | None,
        history: list[dict]) -> str:
    if result is None:
        return (f"| {name} | {config.learning_rate or '-'} | diverged in epoch "
                f"{len(history) + 1} | | | |")
    rates = [float(entry["learning_rate"]) for entry in history]
    drops = [str(int(entry["epoch"]) + 2) for entry, before, after in
             zip(history, rates, rates[1:], strict=False) if after < before]
    best = max(float(entry["val_accuracy"]) for entry in history)
    return (f"| {name} | {result.run.initial_learning_rate():.3g} | {result.epochs} | "
            f"{', '.join(drops) or 'none'} | {100 * best:.1f} | "
            f"{100 * result.val_accuracy:.1f} |")


def main(argv):
    del argv
    work = tempfile.mkdtemp(prefix="small_data_")
    per_class, val_per_class, new_per_class = (2, 1, 2) if FLAGS.quick else (150, 40, 40)
    epochs, tune_epochs = (1, 1) if FLAGS.quick else (FLAGS.epochs, FLAGS.fine_tune_epochs)
    demo_data.write(os.path.join(work, "images"), train_per_class=per_class,
                    val_per_class=val_per_class)
    base = demo.run_config(work, epochs)
    lines = ["| schedule | rate | epochs | rate drops before epoch | best top-1 (%) | "
             "final top-1 (%) |", "|---|---|---|---|---|---|"]
    first = None
    for name, changes in SCHEDULES.items():
        if FLAGS.quick and name not in QUICK_ROWS:
            continue
        options = {key: value for key, value in changes.items() if not key.startswith("_")}
        config = dataclasses.replace(base, model_dir=os.path.join(work, name.replace(" ", "_")
                                                                  .replace(",", "")),
                                     **options)
        result, history = trained(config, gate=changes.get("_gate", True))
        first = first or result
        lines.append(row(name, config, result, history))
        print(lines[-1], flush=True)
    demo_data.write(os.path.join(work, "new_images"), train_per_class=new_per_class,
                    val_per_class=20 if not FLAGS.quick else 1, classes=demo_data.NEW_CLASSES)
    tuning = ["| fine-tuning onto 4 new shapes | rate | epochs | rate drops before epoch | "
              "best top-1 (%) | final top-1 (%) |", "|---|---|---|---|---|---|"]
    # At the batch the default rule gives the new shapes' training images.
    fine_tuning_rate = runs.scaled_learning_rate(tasks.FINE_TUNE_LEARNING_RATE,
                                                 runs.default_batch_size(
                                                     len(demo_data.NEW_CLASSES) * new_per_class))
    for name, changes in (("all layers (default)", {}),
                          ("all layers, the fine-tuning rate", {"learning_rate": fine_tuning_rate}),
                          ("freeze_convs", {"freeze_convs": True})):
        if FLAGS.quick and name not in QUICK_ROWS:
            continue
        config = dataclasses.replace(demo.fine_tune_config(first.run.config, tune_epochs),
                                     model_dir=os.path.join(work, f"tuned_{len(tuning)}"),
                                     **changes)
        result, history = trained(config)
        tuning.append(row(name, config, result, history))
        print(tuning[-1], flush=True)
    body = (
        f"The demo's run and images (`recipes/demo.py`: config A at 1/8 width, 48 px crops of S "
        f"in [54, 72], batch 32 from the default rule, seed 0; {per_class * 10} training and "
        f"{val_per_class * 10} held-out images), {epochs} epochs at most, from scratch under "
        "each schedule; then its default run fine-tuned onto the 4 new shapes "
        f"({new_per_class} training and 20 held-out images each; batch 4; the default rate 0.01 "
        "x 4/256, its classifier being new, or the paper's fine-tuning rate 0.001 x 4/256) "
        f"for {tune_epochs} epochs at most. Top-1 is centre-crop validation accuracy; the "
        "final one is the run's last epoch.\n\n"
        + "\n".join(lines) + "\n\n" + "\n".join(tuning))
    if not FLAGS.quick:
        report.write_section(
            "Small data", f"python -m benchmarks.small_data --epochs={FLAGS.epochs} "
            f"--fine_tune_epochs={FLAGS.fine_tune_epochs}", body)
    print(body)


if __name__ == "__main__":
    app.run(main)

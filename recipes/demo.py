"""The README's first command (`make demo`): the main job, end to end, on a built-in set,
in one process through the library calls the recipes are shims over.

1. Makes a small ten-class image set as JPEG files in ImageNet's folder layout
   (`recipes/demo_data.py`), so the real pipeline runs: scale jitter, crop, flip, colour
   shift.
2. Trains a narrow VGG (config A at 1/8 width, 64 px crops from S in [72, 96], learning
   rate 0.005) with `keras_vgg.training.train`, the recipe's defaults otherwise
   (initialisation, schedule), and prints the held-out accuracy with its loss.
3. Plots the training curves into `<workdir>/run/training_curves.png`.
4. From the run directory alone, as `export/export_saved_model.py --model_dir` does:
   exports the net as a variable-size SavedModel for TF-Serving (into
   `<workdir>/exported/shapes/<version>`, the class names served with it), and runs dense
   evaluation of that SavedModel on the held-out images, full-size (no crop).

    python recipes/demo.py [--workdir=demo] [--epochs=30]
"""

from __future__ import annotations

import csv
import os
import shutil
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

from keras_vgg import evaluation, runs, serving, training  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import demo_data  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", "demo", "Where the image set and the run go.")
flags.DEFINE_integer("epochs", 30, "Training epochs.")
flags.DEFINE_integer("train_per_class", 150, "Training images per class.")
flags.DEFINE_integer("val_per_class", 40, "Held-out images per class.")


# Four times the default for batch 32 (0.01 x 32/256). The small set gives few steps per
# epoch: at the default rate this narrow net stays near chance for longer than the plateau
# schedule's patience, which then drops the rate three times and stops near chance.
DEMO_LEARNING_RATE = 0.005


def run_config(workdir: str, epochs: int) -> runs.RunConfig:
    """The demo's training run: a narrow config A on the demo images."""
    images = os.path.join(workdir, "images")
    return runs.RunConfig(
        model_dir=os.path.join(workdir, "run"), config="A", data=f"folder:{images}/train",
        val_data=f"folder:{images}/val", epochs=epochs, batch_size=32, width_multiplier=0.125,
        scale=(72, 96), crop_size=64, learning_rate=DEMO_LEARNING_RATE, seed=0)


def plot(run: runs.Run, png: str) -> None:
    """The run's loss and accuracy per epoch, training and validation."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(os.path.join(run.directory, "history.csv"), encoding="utf8") as file:
        rows = list(csv.DictReader(file))
    epochs = [int(row["epoch"]) + 1 for row in rows]
    figure, (loss_axes, accuracy_axes) = plt.subplots(1, 2, figsize=(10, 4))
    for key, label in (("loss", "training"), ("val_loss", "validation")):
        loss_axes.plot(epochs, [float(row[key]) for row in rows], marker="o", label=label)
    for key, label in (("accuracy", "training"), ("val_accuracy", "validation")):
        accuracy_axes.plot(epochs, [float(row[key]) for row in rows], marker="o", label=label)
    accuracy_axes.axhline(1 / run.num_classes, color="grey", linestyle=":",
                          label="chance")
    loss_axes.set(title="Loss", xlabel="epoch")
    accuracy_axes.set(title="Top-1 accuracy", xlabel="epoch", ylim=(0, 1))
    loss_axes.legend()
    accuracy_axes.legend()
    config = run.config
    figure.suptitle(f"keras-vgg demo: config {config.config}, width {config.width_multiplier:g}, "
                    f"{config.crop_size} px crops")
    figure.tight_layout()
    figure.savefig(png, dpi=100)


def main(argv):
    del argv
    images = os.path.join(FLAGS.workdir, "images")
    print(f"Writing the demo image set to {images} ...", flush=True)
    demo_data.write(images, train_per_class=FLAGS.train_per_class,
                    val_per_class=FLAGS.val_per_class)
    config = run_config(FLAGS.workdir, FLAGS.epochs)
    shutil.rmtree(config.model_dir, ignore_errors=True)  # a fresh run each time
    training.train(config)

    run = runs.load(config.model_dir)  # from here on, the run directory says everything
    png = os.path.join(run.directory, "training_curves.png")
    plot(run, png)
    print(f"Training curves: {png}")
    exported = os.path.join(FLAGS.workdir, "exported")
    shutil.rmtree(exported, ignore_errors=True)
    path = serving.export_run(run, exported, model_name="shapes")
    print(f"Exported {path} (Q={run.test_scale}, serving the names {run.class_names[:3]}...); "
          f"the same: python export/export_saved_model.py --model_dir={run.directory} "
          f"--export_base={exported} --model_name=shapes")
    print("Dense evaluation of the exported SavedModel on the held-out images:", flush=True)
    print(evaluation.table([evaluation.evaluate_saved_model(path, config.val_data)]))


if __name__ == "__main__":
    app.run(main)

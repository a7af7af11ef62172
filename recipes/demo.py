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
5. ConvNet fusion (Sect. 4.4): fine-tunes the net at a fixed scale S for a few epochs
   (`init_from`), a second net as the paper made them, and fuses the two by averaging
   their dense-evaluation posteriors (`imagenet_eval.py` with two `--model_dir`s does the
   same).
6. Very deep features (Appendix B): a linear SVM on the first net's fc2 descriptors of
   the training images, scored by mean class recall on the held-out ones
   (`recipes/transfer.py` does the same, with a cache and per-class numbers).

    python recipes/demo.py [--workdir=demo] [--epochs=30] [--fusion_epochs=4]
"""

from __future__ import annotations

import csv
import dataclasses
import os
import shutil
import sys

from absl import app, flags

from keras_vgg import evaluation, linear, runs, serving, training, transfer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import demo_data  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", "demo", "Where the image set and the run go.")
flags.DEFINE_integer("epochs", 30, "Training epochs.")
flags.DEFINE_integer("fusion_epochs", 4, "Fine-tuning epochs of the second net, for fusion.")
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


def fusion_run_config(first: runs.RunConfig, epochs: int) -> runs.RunConfig:
    """The second net for fusion: the first fine-tuned at the fixed scale S = its largest
    S, at a tenth of its learning rate, as the paper fine-tuned its nets for other scales
    (Sect. 3.1); its Table 6 fuses such nets."""
    return dataclasses.replace(first, model_dir=first.model_dir + f"_s{max(first.scale)}",
                               scale=(max(first.scale),) * 2, init_from=first.model_dir,
                               learning_rate=first.learning_rate / 10, epochs=epochs)


def paper_name(run: runs.Run) -> str:
    """A net as Table 6 names it, config/S/Q: "A/96/96", or "A/[72;96]/84" (jittered S)."""
    low, high = run.config.scale
    scale = f"{low}" if low == high else f"[{low};{high}]"
    return f"{run.config.config}/{scale}/{run.test_scale}"


def fusion_line(first: runs.Run, second: runs.Run, source: str) -> str:
    """The two nets and their fusion, dense evaluation at each net's Q on `source`."""
    nets = [dataclasses.replace(
        evaluation.Net.of_run(run, source, test_scales=(run.test_scale,)),
        name=paper_name(run)) for run in (first, second)]
    rows = evaluation.fuse(nets, source)
    errors = ", ".join(f"{row.nets} {100 * row.top1_error:.1f}%" for row in rows)
    return (f"Fusion (Sect. 4.4), top-1 error of dense evaluation on {rows[-1].images} "
            f"held-out images: {errors}")


def transfer_line(run: runs.Run, train_source: str, val_source: str) -> str:
    """A linear SVM on the run's fc2 descriptors (at its Q) of `train_source`, scored on
    `val_source`, as one line."""
    describe = transfer.Describer(run.build_model(), test_scales=(run.test_scale,),
                                  preprocessing=run.config.preprocessing)
    train_x, train_y, _ = transfer.labelled_descriptors(describe, train_source)
    val_x, val_y, _ = transfer.labelled_descriptors(describe, val_source)
    classifier = linear.fit_linear_svm(train_x, train_y, run.class_ids)
    result = linear.score(classifier, val_x, val_y, run.class_ids)
    return (f"Transfer (Appendix B): a linear SVM on config {run.config.config}'s "
            f"{transfer.PAPER_LAYER} descriptors (Q={run.test_scale}): {result.metric} "
            f"{100 * result.value:.1f}% on {result.images} held-out images "
            f"(chance {100 / run.num_classes:.0f}%)")


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

    second = fusion_run_config(config, FLAGS.fusion_epochs)
    shutil.rmtree(second.model_dir, ignore_errors=True)
    print(f"Fine-tuning {run.directory} at S={max(config.scale)}, a second net for fusion ...",
          flush=True)
    training.train(second, verbose=0)
    print(fusion_line(run, runs.load(second.model_dir), config.val_data), flush=True)
    print(transfer_line(run, config.data, config.val_data), flush=True)


if __name__ == "__main__":
    app.run(main)

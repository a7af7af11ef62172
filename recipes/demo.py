"""The README's first command (`make demo`): the main job, end to end, on a built-in set,
in one process through the library calls the commands are shims over, every one at its
defaults but the size of the net and of the images.

1. Makes a small ten-class image set as JPEG files in ImageNet's folder layout
   (`recipes/demo_data.py`), so the real pipeline runs: scale jitter, crop, flip, colour
   shift.
2. Trains a narrow VGG (config A at 1/8 width, 48 px crops from S in [54, 72]) with
   `keras_vgg.training.train`, the training command's defaults otherwise (batch,
   learning rate, initialisation, schedule), and prints the held-out accuracy.
3. Plots the training curves into `<workdir>/shapes/training_curves.png`.
4. From the run directory alone, as `keras-vgg-export --model_dir` does: exports the net
   as a variable-size SavedModel for TF-Serving (into `<workdir>/exported/shapes/<version>`,
   the class names served with it), and runs dense evaluation of that SavedModel on the
   held-out images, full-size (no crop).
5. Fine-tunes the net onto four shapes it never saw (a few dozen images each), from the
   defaults, as `keras-vgg-train --init_from=<workdir>/shapes` does, and predicts two of
   their held-out images with it.
6. ConvNet fusion (Sect. 4.4): fine-tunes the net at a fixed scale S for a few epochs
   (`init_from`), a second net as the paper made them, and fuses the two by averaging
   their dense-evaluation posteriors (`keras-vgg-eval` with two `--model_dir`s does the
   same).
7. Very deep features (Appendix B): a linear SVM on the first net's fc2 descriptors of
   the new shapes' training images, scored by mean class recall on their held-out ones,
   beside the fine-tuning of step 5 (`keras-vgg-transfer` does the same, with a cache and
   per-class numbers).

    python recipes/demo.py [--workdir=demo] [--epochs=25] [--fine_tune_epochs=15]
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import sys

from absl import app, flags

from keras_vgg import (
    curves,
    evaluation,
    linear,
    nets,
    prediction,
    runs,
    serving,
    sources,
    training,
    transfer,
)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import demo_data  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", "demo", "Where the image sets and the runs go.")
flags.DEFINE_integer("epochs", 25, "Training epochs (at most; the schedule may stop sooner).")
flags.DEFINE_integer("fine_tune_epochs", 15, "Epochs of the fine-tuning onto new shapes.")
flags.DEFINE_integer("fusion_epochs", 1, "Fine-tuning epochs of the second net, for fusion.")
flags.DEFINE_integer("train_per_class", 150, "Training images per class.")
flags.DEFINE_integer("val_per_class", 40, "Held-out images per class.")
flags.DEFINE_integer("new_train_per_class", 40, "Training images per new shape.")


def run_config(workdir: str, epochs: int) -> runs.RunConfig:
    """The demo's training run: a narrow config A on the demo images, the defaults else."""
    images = os.path.join(workdir, "images")
    return runs.RunConfig(
        model_dir=os.path.join(workdir, "shapes"), config="A", data=f"folder:{images}/train",
        val_data=f"folder:{images}/val", epochs=epochs, width_multiplier=0.125,
        scale=demo_data.SCALE, crop_size=demo_data.CROP_SIZE, seed=0)


def fine_tune_config(first: runs.RunConfig, epochs: int) -> runs.RunConfig:
    """Fine-tuning the demo's net onto the new shapes: `init_from` it, and nothing else
    but the data (the network, crop, scale and preprocessing come from the run)."""
    images = os.path.join(os.path.dirname(first.model_dir), "new_images")
    return runs.RunConfig(
        model_dir=os.path.join(os.path.dirname(first.model_dir), "new_shapes"),
        init_from=first.model_dir, data=f"folder:{images}/train",
        val_data=f"folder:{images}/val", epochs=epochs, seed=0)


def fusion_run_config(first: runs.RunConfig, epochs: int) -> runs.RunConfig:
    """The second net for fusion: the first fine-tuned at the fixed scale S = its largest
    S (at the fine-tuning rate, a tenth of the first's), as the paper fine-tuned its nets
    for other scales (Sect. 3.1); its Table 6 fuses such nets."""
    return dataclasses.replace(first, model_dir=first.model_dir + f"_s{max(first.scale)}",
                               scale=(max(first.scale),) * 2, init_from=first.model_dir,
                               epochs=epochs)


def paper_name(run: runs.Run) -> str:
    """A net as Table 6 names it, config/S/Q: "A/96/96", or "A/[72;96]/84" (jittered S)."""
    low, high = run.config.scale
    scale = f"{low}" if low == high else f"[{low};{high}]"
    return f"{run.config.config}/{scale}/{run.test_scale}"


def fusion_line(first: runs.Run, second: runs.Run, source: str) -> str:
    """The two nets and their fusion, dense evaluation at each net's Q on `source`."""
    fused = [dataclasses.replace(nets.Net.of_run(run, test_scales=(run.test_scale,)),
                                 name=paper_name(run)) for run in (first, second)]
    rows = evaluation.fuse(fused, source)
    errors = ", ".join(f"{row.nets} {100 * row.top1_error:.1f}%" for row in rows)
    return (f"Fusion (Sect. 4.4), top-1 error of dense evaluation on {rows[-1].images} "
            f"held-out images: {errors}")


def transfer_line(run: runs.Run, train_source: str, val_source: str) -> str:
    """A linear SVM on the run's fc2 descriptors (at its Q) of `train_source`, another
    data set, scored on `val_source`, as one line."""
    describe = transfer.Describer(run.build_model(), test_scales=(run.test_scale,),
                                  preprocessing=run.config.preprocessing)
    class_ids = sources.open_single_label(train_source, purpose="transfer").class_ids
    train_x, train_y, _ = transfer.labelled_descriptors(describe, train_source)
    val_x, val_y, _ = transfer.labelled_descriptors(describe, val_source)
    classifier = linear.fit_linear_svm(train_x, train_y, class_ids)
    result = linear.score(classifier, val_x, val_y, class_ids)
    return (f"Transfer (Appendix B): a linear SVM on config {run.config.config}'s "
            f"{transfer.PAPER_LAYER} descriptors (Q={run.test_scale}) of the {len(class_ids)} "
            f"new shapes: {result.metric} {100 * result.value:.1f}% on {result.images} "
            f"held-out images (chance {100 / len(class_ids):.0f}%)")


def fine_tune_line(result: training.TrainingResult, predicted: list) -> str:
    """The fine-tuning's held-out accuracy, and the predictions of a few images."""
    shown = "; ".join(f"{os.path.basename(answer.image)}: {answer.classes[0][1]} "
                      f"{100 * answer.classes[0][2]:.0f}%" for answer in predicted)
    return (f"Fine-tuned onto {result.run.num_classes} new shapes "
            f"({', '.join(result.run.class_names)}) from the defaults: top-1 accuracy "
            f"{100 * result.val_accuracy:.1f}% on {result.val_images} held-out images after "
            f"{result.epochs} epochs (chance {100 / result.run.num_classes:.0f}%). "
            f"Predicted: {shown}")


def main(argv):
    del argv
    images = os.path.join(FLAGS.workdir, "images")
    print(f"Writing the demo image set to {images} ...", flush=True)
    demo_data.write(images, train_per_class=FLAGS.train_per_class,
                    val_per_class=FLAGS.val_per_class)
    config = run_config(FLAGS.workdir, FLAGS.epochs)
    shutil.rmtree(config.model_dir, ignore_errors=True)  # a fresh run each time
    result = training.train(config)
    if result.learnt is False:
        raise SystemExit(f"demo: {result.not_learnt()}")

    run = runs.load(config.model_dir)  # from here on, the run directory says everything
    png = curves.plot(run, os.path.join(run.directory, "training_curves.png"))
    print(f"Training curves: {png}")
    exported = os.path.join(FLAGS.workdir, "exported")
    shutil.rmtree(exported, ignore_errors=True)
    path = serving.export_net(nets.Net.of_run(run), exported)
    print(f"Exported {path} (Q={run.test_scale}, serving the names {run.class_names[:3]}...); "
          f"the same: keras-vgg-export --model_dir={run.directory} --export_base={exported}")
    print("Dense evaluation of the exported SavedModel on the held-out images:", flush=True)
    print(evaluation.table([evaluation.evaluate_saved_model(path, config.val_data)]))

    new_images = os.path.join(FLAGS.workdir, "new_images")
    demo_data.write(new_images, train_per_class=FLAGS.new_train_per_class, val_per_class=20,
                    classes=demo_data.NEW_CLASSES)
    fine_tune = fine_tune_config(config, FLAGS.fine_tune_epochs)
    shutil.rmtree(fine_tune.model_dir, ignore_errors=True)
    print(f"Fine-tuning {run.directory} onto {len(demo_data.NEW_CLASSES)} new shapes, as "
          f"keras-vgg-train --init_from={run.directory} --data={fine_tune.data} "
          f"--val_data={fine_tune.val_data} --model_dir={fine_tune.model_dir} does ...",
          flush=True)
    tuned = training.train(fine_tune, verbose=0)
    examples = [os.path.join(new_images, "val", name, f"{name}_0000.JPEG")
                for name in demo_data.NEW_CLASSES[:2]]
    predicted = list(prediction.Predictor(nets.Net.of_run(tuned.run), top_k=1).predict(
        examples))
    print(fine_tune_line(tuned, predicted), flush=True)

    second = fusion_run_config(config, FLAGS.fusion_epochs)
    shutil.rmtree(second.model_dir, ignore_errors=True)
    print(f"Fine-tuning {run.directory} at S={max(config.scale)}, a second net for fusion ...",
          flush=True)
    training.train(second, verbose=0)
    print(fusion_line(run, runs.load(second.model_dir), config.val_data), flush=True)
    print(transfer_line(run, fine_tune.data, fine_tune.val_data), flush=True)


if __name__ == "__main__":
    app.run(main)

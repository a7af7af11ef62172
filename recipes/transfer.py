"""Very deep features on another data set (Appendix B): a trained net's descriptors, then
linear SVMs, scored as the paper does: mean class recall (Caltech) for single-label data,
mean average precision (VOC) for multi-label data.

    python recipes/transfer.py --model_dir=runs/d --data=tfds:caltech101 \
        --val_data=tfds:caltech101 --val_split=test --output_dir=transfer/caltech
    python recipes/transfer.py --config=D --weights=imagenet --data=tfds:voc/2007 \
        --split=train+validation --val_data=tfds:voc/2007 --val_split=test
    python recipes/transfer.py --model_dir=runs/d --data=folder:/data/mine/train \
        --val_data=folder:/data/mine/test

Descriptors (`keras_vgg.transfer`) are computed once per source, net and setting, with a
progress bar, and cached in `--output_dir`/descriptors, so a second run trains the
classifiers only. The SVMs' C is chosen by stratified cross-validation on the training
split (`keras_vgg.linear`). Per-class numbers go to `--output_dir`/per_class.csv. Needs
scikit-learn (`pip install 'keras-vgg[transfer]'`).
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import typing

import numpy as np
from absl import app, flags

import keras_vgg
from keras_vgg import image_ops, imagenet, linear, runs, sources, transfer

if typing.TYPE_CHECKING:
    import keras

FLAGS = flags.FLAGS
flags.DEFINE_string("model_dir", None, "A training run's directory: the net and its settings.")
flags.DEFINE_string("weights", None, "Instead: 'imagenet' or a weights file, with --config.")
flags.DEFINE_string("config", "D", "With --weights: A, A-LRN, B, C, D, E or a variant.")
flags.DEFINE_integer("classes", imagenet.NUM_CLASSES, "With --weights: the net's classes.")
flags.DEFINE_integer("crop_size", image_ops.CROP_SIZE, "With --weights: their training crop side.")
flags.DEFINE_float("width_multiplier", 1.0, "With --weights: the trained network's width.")
flags.DEFINE_enum("preprocessing", "caffe", list(imagenet.PREPROCESSING_MODES),
                  "With --weights: the preprocessing the weights expect.")
flags.DEFINE_string("data", None, "Training images of the new task (tfds:, folder:, tfrecord:).")
flags.DEFINE_string("val_data", None, "Held-out images of the new task, labelled the same way.")
flags.DEFINE_string("split", "train", "TFDS split of --data.")
flags.DEFINE_string("val_split", "test", "TFDS split of --val_data.")
flags.DEFINE_string("layer", transfer.PAPER_LAYER, "fc2 (the paper's), fc1 or a conv layer.")
flags.DEFINE_list("test_scales", None, "Scales Q; default the run's Q set, or the paper's "
                  f"{','.join(map(str, transfer.PAPER_TEST_SCALES))} for --weights.")
flags.DEFINE_enum("combine", "mean", list(transfer.COMBINE_MODES), "Average or stack scales.")
flags.DEFINE_list("c_values", [f"{c:g}" for c in linear.DEFAULT_C_VALUES],
                  "SVM C values to cross-validate.")
flags.DEFINE_enum("ap_method", "auto", ["auto", *linear.AP_METHODS],
                  "Multi-label data: VOC 2007's 11-point AP or VOC 2010 on's area; auto: "
                  "11_point for tfds:voc/2007, else area.")
flags.DEFINE_integer("folds", 5, "Cross-validation folds (at most the smallest class's size).",
                     lower_bound=2)
flags.DEFINE_string("output_dir", "transfer", "Descriptor cache and per_class.csv go here.")
flags.mark_flags_as_mutual_exclusive(["model_dir", "weights"], required=True)
flags.mark_flags_as_required(["data", "val_data"])


def net() -> tuple[keras.Model, str, tuple[int, ...], str]:
    """The model, its preprocessing, its Q set and an identity for the cache."""
    scales = tuple(int(q) for q in FLAGS.test_scales or ())
    if FLAGS.model_dir:
        run = runs.load(FLAGS.model_dir)
        identity = _file_identity(run.weights_path)
        return run.build_model(), run.config.preprocessing, scales or run.test_scales, identity
    model = keras_vgg.vgg(FLAGS.config, weights=FLAGS.weights, classes=FLAGS.classes,
                          input_shape=(FLAGS.crop_size, FLAGS.crop_size, 3),
                          width_multiplier=FLAGS.width_multiplier)
    identity = FLAGS.weights if FLAGS.weights == "imagenet" else _file_identity(FLAGS.weights)
    return model, FLAGS.preprocessing, scales or transfer.PAPER_TEST_SCALES, identity


def _file_identity(path: str) -> str:
    status = os.stat(path)
    return f"{os.path.abspath(path)}:{status.st_size}:{status.st_mtime_ns}"


def cached_descriptors(describe: transfer.Describer, source: str, split: str, key: dict):
    """`labelled_descriptors`, computed once per (source, net, settings) and then read from
    `--output_dir`/descriptors."""
    digest = hashlib.sha256(json.dumps({**key, "source": source, "split": split},
                                       sort_keys=True).encode()).hexdigest()[:16]
    path = os.path.join(FLAGS.output_dir, "descriptors", f"{digest}.npz")
    if os.path.exists(path):
        print(f"Descriptors of {source}: cached in {path}", flush=True)
        cached = np.load(path)
        return cached["descriptors"], cached["labels"]
    print(f"Descriptors of {source}:", flush=True)
    vectors, labels, _ = transfer.labelled_descriptors(describe, source, split=split,
                                                       progress=True)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    partial = path + ".partial.npz"
    np.savez(partial, descriptors=vectors, labels=labels)
    os.replace(partial, path)
    return vectors, labels


def ap_method(val_data: str) -> str:
    """--ap_method, with "auto" resolved: VOC 2007's 11-point AP for its own test data,
    else VOC 2010 on's area under the curve."""
    if FLAGS.ap_method != "auto":
        return FLAGS.ap_method
    return "11_point" if val_data.startswith("tfds:voc/2007") else "area"


def main(argv):
    del argv
    try:
        model, preprocessing, scales, identity = net()
        train_source = sources.open_source(FLAGS.data, split=FLAGS.split)
        val_source = sources.open_source(FLAGS.val_data, split=FLAGS.val_split)
        if train_source.multi_label != val_source.multi_label:
            raise ValueError("--data and --val_data must both be multi-label or neither")
        runs.check_same_classes(train_source.class_ids, val_source.class_ids,
                                what=f"--val_data {FLAGS.val_data!r}")
        class_ids = train_source.class_ids
        describe = transfer.Describer(model, test_scales=scales, layer=FLAGS.layer,
                                      combine=FLAGS.combine, preprocessing=preprocessing)
        key = {"net": identity, "layer": FLAGS.layer, "scales": scales,
               "combine": FLAGS.combine, "preprocessing": preprocessing}
        train_x, train_y = cached_descriptors(describe, FLAGS.data, FLAGS.split, key)
        val_x, val_y = cached_descriptors(describe, FLAGS.val_data, FLAGS.val_split, key)
        classifier = linear.fit_linear_svm(train_x, train_y, class_ids,
                                           c_values=[float(c) for c in FLAGS.c_values],
                                           folds=FLAGS.folds)
        method = ap_method(FLAGS.val_data)
        result = linear.score(classifier, val_x, val_y, class_ids, ap_method=method)
    except ValueError as error:
        raise SystemExit(f"transfer.py: error: {error}") from error
    os.makedirs(FLAGS.output_dir, exist_ok=True)
    per_class = os.path.join(FLAGS.output_dir, "per_class.csv")
    with open(per_class, "w", newline="", encoding="utf8") as file:
        writer = csv.writer(file)
        writer.writerow(["class", "held_out_images",
                         "average_precision" if classifier.multi_label else "recall"])
        writer.writerows(result.per_class)
    chosen = sorted(set(classifier.c_values))
    metric = (f"{result.metric} ({method.replace('_', '-')} AP)" if classifier.multi_label
              else result.metric)
    chance = ("" if classifier.multi_label
              else f" (chance {100 / len(class_ids):.1f}%)")
    print(f"Transfer (Appendix B): {FLAGS.layer} descriptors (D={train_x.shape[1]}, "
          f"Q={','.join(map(str, scales))}), linear SVM C={','.join(f'{c:g}' for c in chosen)} "
          f"({classifier.folds}-fold CV on {len(train_y)} images): {metric} "
          f"{100 * result.value:.1f}% on {result.images} held-out images of "
          f"{sum(value is not None for _, _, value in result.per_class)} classes{chance}. "
          f"Per class: {per_class}", flush=True)


if __name__ == "__main__":
    app.run(main)

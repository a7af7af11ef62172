"""Very deep features on another data set (Appendix B): a trained net's descriptors, then a
linear SVM, scored by mean class recall (the paper's Caltech metric).

    python recipes/transfer.py --model_dir=runs/d --data=folder:/data/caltech/train \
        --val_data=folder:/data/caltech/test --output_dir=transfer/caltech
    python recipes/transfer.py --config=D --weights=imagenet --data=... --val_data=...

Descriptors (`keras_vgg.transfer`) are computed once per source, net and setting, with a
progress bar, and cached in `--output_dir`/descriptors, so a second run trains the
classifier only. The SVM's C is chosen by stratified cross-validation on the training
split. Per-class recall goes to `--output_dir`/per_class.csv. Needs scikit-learn
(`pip install 'keras-vgg[transfer]'`).
"""

from __future__ import annotations

import csv
import hashlib
import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

import keras_vgg  # noqa: E402
from keras_vgg import data, imagenet, runs, sources, transfer  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("model_dir", None, "A training run's directory: the net and its settings.")
flags.DEFINE_string("weights", None, "Instead: 'imagenet' or a weights file, with --config.")
flags.DEFINE_string("config", "D", "With --weights: A, A-LRN, B, C, D, E or a variant.")
flags.DEFINE_integer("classes", imagenet.NUM_CLASSES, "With --weights: the net's classes.")
flags.DEFINE_integer("crop_size", data.CROP_SIZE, "With --weights: their training crop side.")
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
flags.DEFINE_list("c_values", ["0.01", "0.1", "1", "10", "100"], "SVM C values to cross-validate.")
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


def linear_svm(vectors: np.ndarray, labels: np.ndarray, class_ids):
    """A one-vs-rest linear SVM, C chosen by stratified cross-validation."""
    try:
        from sklearn.model_selection import GridSearchCV, StratifiedKFold
        from sklearn.svm import LinearSVC
    except ImportError as error:
        raise ValueError("the linear SVM needs scikit-learn: pip install "
                         "'keras-vgg[transfer]'") from error
    counts = np.bincount(labels, minlength=len(class_ids))
    scarce = [class_ids[i] for i, count in enumerate(counts) if 0 < count < 2]
    if scarce:
        raise ValueError(f"classes {scarce} have one training image: cross-validating C needs "
                         "at least two per class")
    folds = min(FLAGS.folds, int(counts[counts > 0].min()))
    search = GridSearchCV(LinearSVC(random_state=0, max_iter=20000),
                          {"C": [float(c) for c in FLAGS.c_values]},
                          cv=StratifiedKFold(folds, shuffle=True, random_state=0),
                          scoring="balanced_accuracy")
    return search.fit(vectors, labels), folds


def main(argv):
    del argv
    try:
        model, preprocessing, scales, identity = net()
        train_classes = sources.open_source(FLAGS.data, split=FLAGS.split).class_ids
        runs.check_same_classes(train_classes,
                                sources.open_source(FLAGS.val_data, split=FLAGS.val_split)
                                .class_ids, what=f"--val_data {FLAGS.val_data!r}")
        describe = transfer.Describer(model, test_scales=scales, layer=FLAGS.layer,
                                      combine=FLAGS.combine, preprocessing=preprocessing)
        key = {"net": identity, "layer": FLAGS.layer, "scales": scales,
               "combine": FLAGS.combine, "preprocessing": preprocessing}
        train_x, train_y = cached_descriptors(describe, FLAGS.data, FLAGS.split, key)
        val_x, val_y = cached_descriptors(describe, FLAGS.val_data, FLAGS.val_split, key)
        search, folds = linear_svm(train_x, train_y, train_classes)
    except ValueError as error:
        raise SystemExit(f"transfer.py: error: {error}") from error
    predicted = search.predict(val_x)
    recalls = [(class_id, int(np.sum(val_y == i)),
                float(np.mean(predicted[val_y == i] == i)) if np.any(val_y == i) else None)
               for i, class_id in enumerate(train_classes)]
    scored = [recall for _, _, recall in recalls if recall is not None]
    os.makedirs(FLAGS.output_dir, exist_ok=True)
    per_class = os.path.join(FLAGS.output_dir, "per_class.csv")
    with open(per_class, "w", newline="", encoding="utf8") as file:
        writer = csv.writer(file)
        writer.writerow(["class", "held_out_images", "recall"])
        writer.writerows(recalls)
    print(f"Transfer (Appendix B): {FLAGS.layer} descriptors (D={train_x.shape[1]}, "
          f"Q={','.join(map(str, scales))}), linear SVM C={search.best_params_['C']:g} "
          f"({folds}-fold CV on {len(train_y)} images): mean class recall "
          f"{100 * np.mean(scored):.1f}% on {len(val_y)} held-out images of {len(scored)} "
          f"classes (chance {100 / len(train_classes):.1f}%). Per class: {per_class}",
          flush=True)


if __name__ == "__main__":
    app.run(main)

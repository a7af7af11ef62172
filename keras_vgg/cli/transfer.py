"""`keras-vgg-transfer` (also `recipes/transfer.py`): very deep features on another data set
(Appendix B): a trained net's descriptors, then linear SVMs, scored as the paper does: mean
class recall (Caltech) for single-label data, mean average precision (VOC) for multi-label
data.

    keras-vgg-transfer --model_dir=runs/d --data=tfds:caltech101 \
        --val_data=tfds:caltech101 --val_split=test --output_dir=transfer/caltech
    keras-vgg-transfer --config=D --weights=imagenet --data=tfds:voc/2007 \
        --split=train+validation --val_data=tfds:voc/2007 --val_split=test
    keras-vgg-transfer --model_dir=runs/d --data=folder:/data/mine/train \
        --val_data=folder:/data/mine/test

The net (`keras_vgg.nets`) gives its preprocessing and scales Q (a run's Q set; for
weights, Appendix B's {256, 384, 512}).

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
import math
import os

import numpy as np
from absl import flags

from keras_vgg import files, linear, nets, runs, sources, transfer
from keras_vgg.cli import net_flags, one_line_errors, refuse_arguments, run_console

FLAGS = flags.FLAGS
PROGRAM = "keras-vgg-transfer"


def define_flags(flag_values: flags.FlagValues = FLAGS) -> None:
    net_flags.define(flag_values, saved_model=False)
    for name, default, help_text in (
            ("data", None, "Training images of the new task (tfds:, folder:, tfrecord:)."),
            ("val_data", None, "Held-out images of the new task, labelled the same way."),
            ("split", "train", "TFDS split of --data."),
            ("val_split", "test", "TFDS split of --val_data."),
            ("layer", transfer.PAPER_LAYER, "fc2 (the paper's), fc1 or a conv layer."),
            ("output_dir", "transfer", "Descriptor cache and per_class.csv go here.")):
        flags.DEFINE_string(name, default, help_text, flag_values=flag_values)
    flags.DEFINE_list("test_scales", None, "Scales Q; default the run's Q set, or Appendix "
                      f"B's {','.join(map(str, transfer.PAPER_TEST_SCALES))} for --weights.",
                      flag_values=flag_values)
    flags.DEFINE_enum("combine", "mean", list(transfer.COMBINE_MODES), "Average or stack "
                      "scales.", flag_values=flag_values)
    flags.DEFINE_list("c_values", [f"{c:g}" for c in linear.DEFAULT_C_VALUES],
                      "SVM C values to cross-validate.", flag_values=flag_values)
    flags.DEFINE_enum("ap_method", "auto", ["auto", *linear.AP_METHODS],
                      "Multi-label data: VOC 2007's 11-point AP or VOC 2010 on's area; auto: "
                      "11_point for tfds:voc/2007, else area.", flag_values=flag_values)
    flags.DEFINE_integer("folds", 5, "Cross-validation folds (at most the smallest class's "
                         "size).", lower_bound=2, flag_values=flag_values)
    flags.mark_flags_as_required(["data", "val_data"], flag_values=flag_values)
    flags.register_validator("c_values", lambda values: all(map(_positive_number, values)),
                             "every C must be a positive number", flag_values=flag_values)
    flags.register_validator(
        "test_scales", lambda values: values is None or all(
            value.isdigit() and int(value) > 0 for value in values),
        "every scale Q must be a positive integer (pixels)", flag_values=flag_values)


def _positive_number(text: str) -> bool:
    try:
        return math.isfinite(float(text)) and float(text) > 0
    except ValueError:
        return False


def test_scales(net: nets.Net, flag_values: flags.FlagValues) -> tuple[int, ...]:
    """--test_scales, else a run's Q set, else Appendix B's."""
    if flag_values.test_scales:
        return tuple(int(q) for q in flag_values.test_scales)
    return net.test_scales if net.run is not None else transfer.PAPER_TEST_SCALES


def identity(net: nets.Net) -> str:
    """What the descriptor cache is keyed on: the weights, as a path with its size and
    modification time (or "imagenet")."""
    if net.weights == "imagenet" or not os.path.isfile(net.weights or ""):
        return str(net.weights)
    status = os.stat(net.weights)
    return f"{os.path.abspath(net.weights)}:{status.st_size}:{status.st_mtime_ns}"


def cached_descriptors(describe: transfer.Describer, source: str, split: str, key: dict, *,
                       output_dir: str):
    """`labelled_descriptors`, computed once per (source, net, settings) and then read from
    `output_dir`/descriptors."""
    digest = hashlib.sha256(json.dumps({**key, "source": source, "split": split},
                                       sort_keys=True).encode()).hexdigest()[:16]
    path = os.path.join(output_dir, "descriptors", f"{digest}.npz")
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


def ap_method(chosen: str, val_data: str) -> str:
    """--ap_method, with "auto" resolved: VOC 2007's 11-point AP for its own test data,
    else VOC 2010 on's area under the curve."""
    if chosen != "auto":
        return chosen
    return "11_point" if val_data.startswith("tfds:voc/2007") else "area"


def main(argv, flag_values: flags.FlagValues = FLAGS) -> None:
    refuse_arguments(argv)
    fv = flag_values
    with one_line_errors(PROGRAM):
        files.check_writable(fv.output_dir, what="--output_dir")
        (net,) = net_flags.nets_from_flags(fv)
        scales = test_scales(net, fv)
        train_source = sources.open_source(fv.data, split=fv.split)
        val_source = sources.open_source(fv.val_data, split=fv.val_split)
        if train_source.multi_label != val_source.multi_label:
            raise ValueError("--data and --val_data must both be multi-label or neither")
        runs.check_same_classes(train_source.class_ids, val_source.class_ids,
                                what=f"--val_data {fv.val_data!r}")
        class_ids = train_source.class_ids
        describe = transfer.Describer(net.build(), test_scales=scales, layer=fv.layer,
                                      combine=fv.combine, preprocessing=net.preprocessing)
        key = {"net": identity(net), "layer": fv.layer, "scales": scales,
               "combine": fv.combine, "preprocessing": net.preprocessing}
        train_x, train_y = cached_descriptors(describe, fv.data, fv.split, key,
                                              output_dir=fv.output_dir)
        val_x, val_y = cached_descriptors(describe, fv.val_data, fv.val_split, key,
                                          output_dir=fv.output_dir)
        classifier = linear.fit_linear_svm(train_x, train_y, class_ids,
                                           c_values=[float(c) for c in fv.c_values],
                                           folds=fv.folds)
        method = ap_method(fv.ap_method, fv.val_data)
        result = linear.score(classifier, val_x, val_y, class_ids, ap_method=method)
    os.makedirs(fv.output_dir, exist_ok=True)
    per_class = os.path.join(fv.output_dir, "per_class.csv")
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
    print(f"Transfer (Appendix B): {fv.layer} descriptors (D={train_x.shape[1]}, "
          f"Q={','.join(map(str, scales))}), linear SVM C={','.join(f'{c:g}' for c in chosen)} "
          f"({classifier.folds}-fold CV on {len(train_y)} images): {metric} "
          f"{100 * result.value:.1f}% on {result.images} held-out images of "
          f"{sum(value is not None for _, _, value in result.per_class)} classes{chance}. "
          f"Per class: {per_class}", flush=True)


def run() -> None:
    """The console command."""
    define_flags()
    run_console(main)

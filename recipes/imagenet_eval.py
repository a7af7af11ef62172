"""Evaluates a trained net with the paper's test protocols (Sect. 3.2) and prints a table
shaped like its Tables 3-5 (top-1 / top-5 error, and images/s).

    python recipes/imagenet_eval.py --model_dir=runs/d --data=folder:/data/val
    python recipes/imagenet_eval.py --model_dir=runs/d --protocols=dense,multi_crop,combined \
        --data='tfds:imagenet2012?data_dir=/data/tfds'
    python recipes/imagenet_eval.py --config=E --weights=imagenet --data=folder:/data/val
    python recipes/imagenet_eval.py --saved_model=exported/vgg16/1 --data=folder:/data/val
    python recipes/imagenet_eval.py --model_dir=runs/d,runs/e --data=folder:/data/val
    python recipes/imagenet_eval.py --config=D,E --weights=imagenet,imagenet --data=...

Localisation runs (`--task=localisation`, Appendix A) are evaluated under both protocols
of Appendix A.2; the full one needs the classification net, by default the run the
localisation run was initialised from (`--classifier_dir` to name another). Several
localisation runs merge the union of their boxes:

    python recipes/imagenet_eval.py --model_dir=runs/d_loc --data="folder:/data/val?boxes=..."

A run directory (`--model_dir`, written by `recipes/imagenet_train.py`) says everything
else: the network, its crop, classes and preprocessing, and the paper's multi-scale Q set
for its training scale ({S-32, S, S+32}, or {S_min, (S_min+S_max)/2, S_max} when jittered).
Other weights need `--config` and the rest. An exported SavedModel is evaluated densely at
the Q (and flip) it was exported with. Several run directories or weight files are
evaluated each and fused, their posteriors averaged (Sect. 4.4), in a table shaped like
Table 6.
"""

from __future__ import annotations

from absl import app, flags

import keras_vgg
from keras_vgg import evaluation, image_ops, imagenet, localisation_eval, runs, sources

FLAGS = flags.FLAGS
flags.DEFINE_list("model_dir", None, "A training run's directory (the net and its settings), "
                  "or several, comma-separated, to fuse.")
flags.DEFINE_list("weights", None, "Instead: 'imagenet' or a weights file (Keras, torchvision, "
                  "timm), or several to fuse, with --config and the flags below.")
flags.DEFINE_string("saved_model", None, "Instead: an exported version directory.")
flags.DEFINE_string("data", "tfds:imagenet2012", "Evaluation source (tfds:, folder:, tfrecord:).")
flags.DEFINE_string("split", "validation", "TFDS split.")
flags.DEFINE_list("protocols", ["dense"], f"Some of {', '.join(evaluation.PROTOCOLS)}.")
flags.DEFINE_list("test_scales", None, "Test scales Q, e.g. 256,384,512; default the run's "
                  f"multi-scale set, or {image_ops.TEST_SCALE} for --weights.")
flags.DEFINE_bool("flip", True, "Average each image with its mirror image.")
flags.DEFINE_integer("max_images", None, "Evaluate only this many images.")
flags.DEFINE_list("config", ["D"], "With --weights: A, A-LRN, B, C, D, E or a variant; one "
                  "for every weights file, or one for all.")
flags.DEFINE_integer("crop_size", image_ops.CROP_SIZE, "With --weights: their training crop side.")
flags.DEFINE_float("width_multiplier", 1.0, "With --weights: the trained network's width.")
flags.DEFINE_enum("preprocessing", "caffe", list(imagenet.PREPROCESSING_MODES),
                  "With --weights: caffe for Keras weights, torch for torchvision/timm ones.")
flags.DEFINE_string("classifier_dir", None, "With localisation runs: the classification run "
                    "whose scores rate their boxes; default the run they started from.")
flags.mark_flags_as_mutual_exclusive(["model_dir", "weights", "saved_model"], required=True)
NETWORK_FLAGS = ("config", "crop_size", "width_multiplier", "preprocessing")


def localisation_report(localisers: list[runs.Run], scales: tuple[int, ...]) -> str:
    """Both protocols of Appendix A.2 for localisation runs, one line each."""
    if any(run.config.task != "localisation" for run in localisers):
        raise ValueError("--model_dir mixes localisation and classification runs")
    classifier_dir = FLAGS.classifier_dir or localisers[0].config.init_from
    if not (classifier_dir and runs.is_run(classifier_dir)
            and runs.load(classifier_dir).config.task == "classification"):
        raise ValueError("the full protocol rates boxes with a classification net: give "
                         "--classifier_dir=RUN")
    classifier = runs.load(classifier_dir)
    for run in localisers:
        runs.check_same_classes(classifier.class_ids, run.class_ids,
                                what=f"the localisation run {run.directory}")
    q = scales[0] if scales else localisers[0].test_scale
    options = {"test_scale": q, "preprocessing": localisers[0].config.preprocessing,
               "split": FLAGS.split}
    nets = [run.build_model() for run in localisers]
    lines = [f"{run.directory}: " + localisation_eval.centre_crop(net, FLAGS.data, **options)[
        0].summary() for run, net in zip(localisers, nets, strict=True)]
    full, _ = localisation_eval.full(nets, classifier.build_model(), FLAGS.data, **options)
    names = " + ".join(run.directory for run in localisers)
    return "\n".join([*lines, f"{names} (boxes rated by {classifier.directory}): "
                       f"{full.summary()}"])


def main(argv):
    del argv
    try:
        if FLAGS.saved_model:
            print(evaluation.table([evaluation.evaluate_saved_model(
                FLAGS.saved_model, FLAGS.data, split=FLAGS.split,
                max_images=FLAGS.max_images)]))
            return
        scales = tuple(int(q) for q in FLAGS.test_scales or ())
        options = {"protocols": FLAGS.protocols, "flip": FLAGS.flip, "split": FLAGS.split,
                   "max_images": FLAGS.max_images}
        given = [f"--{name}" for name in NETWORK_FLAGS if FLAGS[name].present]
        if FLAGS.model_dir and given:
            raise ValueError(f"--model_dir describes the network: drop {', '.join(given)}")
        loaded = [runs.load(path) for path in FLAGS.model_dir or ()]
        if any(run.config.task == "localisation" for run in loaded):
            print(localisation_report(loaded, scales))
            return
        nets = [evaluation.Net.of_run(run, FLAGS.data, split=FLAGS.split, test_scales=scales)
                for run in loaded] or nets_of_weights(scales)
        if len(nets) > 1:
            rows = [row for protocol in FLAGS.protocols for row in evaluation.fuse(
                nets, FLAGS.data, protocol=protocol, flip=FLAGS.flip, split=FLAGS.split,
                max_images=FLAGS.max_images)]
            print(evaluation.fusion_table(rows))
            return
        (net,) = nets
        results = evaluation.evaluate(net.model, FLAGS.data, test_scales=net.test_scales,
                                      preprocessing=net.preprocessing, **options)
    except ValueError as error:
        raise SystemExit(f"imagenet_eval.py: error: {error}") from error
    print(evaluation.table(results))


def nets_of_weights(scales: tuple[int, ...]) -> list[evaluation.Net]:
    """One net per --weights entry, of the --config at the same position (or the one)."""
    configs = FLAGS.config * len(FLAGS.weights) if len(FLAGS.config) == 1 else FLAGS.config
    if len(configs) != len(FLAGS.weights):
        raise ValueError(f"{len(FLAGS.weights)} --weights and {len(FLAGS.config)} --config: "
                         "give one config for each, or one for all")
    classes = sources.open_single_label(FLAGS.data, split=FLAGS.split,
                                        purpose="evaluation").num_classes
    return [evaluation.Net(
        f"{config} ({weights})",
        keras_vgg.vgg(config, weights=weights, classes=classes,
                      input_shape=(FLAGS.crop_size, FLAGS.crop_size, 3),
                      width_multiplier=FLAGS.width_multiplier),
        FLAGS.preprocessing, scales or (image_ops.TEST_SCALE,))
        for config, weights in zip(configs, FLAGS.weights, strict=True)]


if __name__ == "__main__":
    app.run(main)

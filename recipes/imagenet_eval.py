"""Evaluates trained weights with the paper's test protocols (Sect. 3.2) and prints a table
shaped like its Tables 3-5 (top-1 / top-5 error, and images/s).

    python recipes/imagenet_eval.py --config=D --weights=runs/d/final.weights.h5 \
        --data='tfds:imagenet2012?data_dir=/data/tfds' --protocols=dense,multi_crop,combined \
        --test_scales=256,384,512
    python recipes/imagenet_eval.py --config=E --weights=imagenet --data=folder:/data/val
    python recipes/imagenet_eval.py --saved_model=exported/vgg16/1 --data=folder:/data/val

An exported SavedModel is evaluated densely at the Q (and flip) it was exported with.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

import keras_vgg  # noqa: E402
from keras_vgg import data, evaluation, imagenet, sources  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("config", "D", "Network: A, A-LRN, B, C, D, E or a variant.")
flags.DEFINE_string("weights", None, "'imagenet' or a weights file (Keras, torchvision, timm).")
flags.DEFINE_string("saved_model", None, "Instead of --weights: an exported version directory.")
flags.DEFINE_string("data", "tfds:imagenet2012", "Evaluation source (tfds:, folder:, tfrecord:).")
flags.DEFINE_string("split", "validation", "TFDS split.")
flags.DEFINE_list("protocols", ["dense"], f"Some of {', '.join(evaluation.PROTOCOLS)}.")
flags.DEFINE_list("test_scales", [str(data.TEST_SCALE)], "Test scales Q, e.g. 256,384,512.")
flags.DEFINE_bool("flip", True, "Average each image with its mirror image.")
flags.DEFINE_integer("crop_size", data.CROP_SIZE, "The training crop side of the weights.")
flags.DEFINE_float("width_multiplier", 1.0, "Width of the trained network.")
flags.DEFINE_integer("max_images", None, "Evaluate only this many images.")
flags.DEFINE_enum("preprocessing", "caffe", list(imagenet.PREPROCESSING_MODES),
                  "caffe for Keras weights, torch for torchvision/timm checkpoints.")
flags.mark_flags_as_mutual_exclusive(["weights", "saved_model"], required=True)


def main(argv):
    del argv
    try:
        if FLAGS.saved_model:
            print(evaluation.table([evaluation.evaluate_saved_model(
                FLAGS.saved_model, FLAGS.data, split=FLAGS.split,
                max_images=FLAGS.max_images)]))
            return
        scales = tuple(int(q) for q in FLAGS.test_scales)
        classes = sources.open_source(FLAGS.data, split=FLAGS.split).num_classes
        model = keras_vgg.vgg(
            FLAGS.config, weights=FLAGS.weights, classes=classes,
            input_shape=(FLAGS.crop_size, FLAGS.crop_size, 3),
            width_multiplier=FLAGS.width_multiplier,
        )
        results = evaluation.evaluate(
            model, FLAGS.data, protocols=FLAGS.protocols, test_scales=scales, flip=FLAGS.flip,
            preprocessing=FLAGS.preprocessing, split=FLAGS.split, max_images=FLAGS.max_images,
        )
    except ValueError as error:
        raise SystemExit(f"imagenet_eval.py: error: {error}") from error
    print(evaluation.table(results))


if __name__ == "__main__":
    app.run(main)

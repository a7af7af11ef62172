"""Exports trained weights as a variable-size SavedModel laid out for TF-Serving.

    python export/export_saved_model.py --config=D --weights=imagenet --export_base=exported
    python export/export_saved_model.py --config=A --weights=runs/a/final.weights.h5 \
        --crop_size=64 --width_multiplier=0.125 --test_scale=80 --class_names=classes.txt \
        --export_base=exported --model_name=shapes

writes `<export_base>/<model_name>/<version>/` (the next free version by default) with
`saved_model.pb`, `variables/` and the warmup requests TF-Serving replays at load; see
`keras_vgg/serving.py` for the signatures and `export/README.md` for serving it.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags, logging  # noqa: E402

import keras_vgg  # noqa: E402
from keras_vgg import configs, data, imagenet, serving  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("config", "D", "Network: A, A-LRN, B, C, D, E or a variant (D-BN).")
flags.DEFINE_string("weights", None, "'imagenet' or a weights file (Keras, torchvision, timm).")
flags.DEFINE_string("export_base", None, "TF-Serving's model base directory.")
flags.DEFINE_string("model_name", None, "Served model name; default the config's (vgg16).")
flags.DEFINE_integer("version", None, "Version number; default the next free one.")
flags.DEFINE_integer("classes", None, "Output classes; default the class names' count, or 1000.")
flags.DEFINE_string("class_names", None,
                    "A text file with one class name per line; default ImageNet's names.")
flags.DEFINE_integer("crop_size", data.CROP_SIZE, "The training crop side of the weights.")
flags.DEFINE_float("width_multiplier", 1.0, "Width of the trained network.")
flags.DEFINE_enum("preprocessing", "caffe", list(imagenet.PREPROCESSING_MODES),
                  "caffe for Keras weights, torch for torchvision/timm checkpoints.")
flags.DEFINE_integer("test_scale", data.TEST_SCALE, "Q: images are rescaled to this shorter side.")
flags.DEFINE_integer("top_k", 5, "Best classes named in each answer.")
flags.DEFINE_bool("flip", False, "Average with the mirror image (the paper; twice the compute).")
flags.DEFINE_bool("score_map", False, "Also return the class score map (serving_default).")
flags.DEFINE_enum("pixel_dtype", "uint8", ["uint8", "float32"], "serving_default's input dtype.")
flags.DEFINE_bool("warmup", True, "Write assets.extra/tf_serving_warmup_requests.")
flags.mark_flags_as_required(["weights", "export_base"])


def read_class_names(path: str) -> list[str]:
    """One name per non-empty line."""
    with open(path, encoding="utf8") as file:
        return [line.strip() for line in file if line.strip()]


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)  # TF's SavedModel writer logs every renamed input
    try:
        names = read_class_names(FLAGS.class_names) if FLAGS.class_names else None
        classes = FLAGS.classes or (len(names) if names else imagenet.NUM_CLASSES)
        model = keras_vgg.vgg(
            FLAGS.config, weights=FLAGS.weights, classes=classes,
            input_shape=(FLAGS.crop_size, FLAGS.crop_size, 3),
            width_multiplier=FLAGS.width_multiplier,
        )
        options = serving.ServingOptions(
            test_scale=FLAGS.test_scale, preprocessing=FLAGS.preprocessing, top_k=FLAGS.top_k,
            flip=FLAGS.flip, score_map=FLAGS.score_map, pixel_dtype=FLAGS.pixel_dtype,
        )
        model_name = FLAGS.model_name or configs.get(FLAGS.config).model_name
        print(f"Exporting {model_name} (config {FLAGS.config}, Q={FLAGS.test_scale}) ...",
              flush=True)
        path = serving.export_saved_model(
            model, FLAGS.export_base, model_name=model_name, version=FLAGS.version,
            options=options, class_names=names, warmup=FLAGS.warmup,
        )
    except (ValueError, FileExistsError, OSError) as error:
        raise SystemExit(f"export_saved_model.py: error: {error}") from error
    base = os.path.abspath(FLAGS.export_base)
    print(f"Wrote {path}\nServe it with:\n  docker run --rm -p 8500:8500 -p 8501:8501 "
          f"-v {base}:/models -e MODEL_NAME={model_name} tensorflow/serving")


if __name__ == "__main__":
    app.run(main)

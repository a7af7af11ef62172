"""Exports trained weights as a variable-size SavedModel laid out for TF-Serving.

    python export/export_saved_model.py --model_dir=runs/a --export_base=exported
    python export/export_saved_model.py --config=D --weights=imagenet --export_base=exported

A run directory (`--model_dir`, written by `recipes/imagenet_train.py`) gives the network,
its preprocessing, its classes' names (the served `top_k_names`) and Q: S for a fixed
training scale, (S_min + S_max) / 2 for a jittered one. Other weights need `--config` and
the flags after it (ImageNet's class names by default).

writes `<export_base>/<model_name>/<version>/` (the next free version by default) with
`saved_model.pb`, `variables/` and the warmup requests TF-Serving replays at load; see
`keras_vgg/serving.py` for the signatures and `export/README.md` for serving it.
"""

from __future__ import annotations

import os

from absl import app, flags

import keras_vgg
from keras_vgg import configs, image_ops, imagenet, runs, serving

FLAGS = flags.FLAGS
flags.DEFINE_string("model_dir", None, "A training run's directory: the net and its settings.")
flags.DEFINE_string("weights", None, "Instead: 'imagenet' or a weights file (Keras, "
                    "torchvision, timm), with --config and the flags that follow it.")
flags.DEFINE_string("export_base", None, "TF-Serving's model base directory.")
flags.DEFINE_string("model_name", None, "Served model name; default the config's (vgg16).")
flags.DEFINE_integer("version", None, "Version number; default the next free one.")
flags.DEFINE_integer("test_scale", None, "Q: images are rescaled to this shorter side; "
                     f"default the run's, or {image_ops.TEST_SCALE} for --weights.")
flags.DEFINE_string("config", "D", "With --weights: A, A-LRN, B, C, D, E or a variant.")
flags.DEFINE_integer("classes", None, "With --weights: output classes; default the class "
                     "names' count, or 1000.")
flags.DEFINE_string("class_names", None, "With --weights: a text file with one class name "
                    "per line; default ImageNet's names.")
flags.DEFINE_integer("crop_size", image_ops.CROP_SIZE, "With --weights: their training crop side.")
flags.DEFINE_float("width_multiplier", 1.0, "With --weights: the trained network's width.")
flags.DEFINE_enum("preprocessing", "caffe", list(imagenet.PREPROCESSING_MODES),
                  "With --weights: caffe for Keras weights, torch for torchvision/timm ones.")
flags.DEFINE_integer("top_k", 5, "Best classes named in each answer.")
flags.DEFINE_bool("flip", False, "Average with the mirror image (the paper; twice the compute).")
flags.DEFINE_bool("score_map", False, "Also return the class score map (serving_default).")
flags.DEFINE_enum("pixel_dtype", "uint8", ["uint8", "float32"], "serving_default's input dtype.")
flags.DEFINE_bool("warmup", True, "Write assets.extra/tf_serving_warmup_requests.")
flags.DEFINE_integer("max_pixels", image_ops.MAX_PIXELS, "The largest image served, in pixels "
                     "(image_bytes reads it from each file's header before decoding).")
flags.DEFINE_string("localisation_dir", None, "With --model_dir: a localisation run on its "
                    "classes (Appendix A); the signatures then also return `boxes`.")
flags.mark_flags_as_mutual_exclusive(["model_dir", "weights"], required=True)
flags.mark_flag_as_required("export_base")
NETWORK_FLAGS = ("config", "classes", "class_names", "crop_size", "width_multiplier",
                 "preprocessing")


def read_class_names(path: str) -> list[str]:
    """One name per non-empty line."""
    with open(path, encoding="utf8") as file:
        return [line.strip() for line in file if line.strip()]


def main(argv):
    del argv
    try:
        options = {"top_k": FLAGS.top_k, "flip": FLAGS.flip, "score_map": FLAGS.score_map,
                   "pixel_dtype": FLAGS.pixel_dtype, "max_pixels": FLAGS.max_pixels}
        if FLAGS.test_scale:
            options["test_scale"] = FLAGS.test_scale
        given = [f"--{name}" for name in NETWORK_FLAGS if FLAGS[name].present]
        if FLAGS.model_dir:
            if given:
                raise ValueError(f"--model_dir describes the network: drop {', '.join(given)}")
            print(f"Exporting the run {FLAGS.model_dir} ...", flush=True)
            localisation_run = (runs.load(FLAGS.localisation_dir) if FLAGS.localisation_dir
                                else None)
            path = serving.export_run(runs.load(FLAGS.model_dir), FLAGS.export_base,
                                      model_name=FLAGS.model_name, version=FLAGS.version,
                                      warmup=FLAGS.warmup, localisation_run=localisation_run,
                                      **options)
        else:
            if FLAGS.localisation_dir:
                raise ValueError("--localisation_dir goes with --model_dir")
            names = read_class_names(FLAGS.class_names) if FLAGS.class_names else None
            model = keras_vgg.vgg(
                FLAGS.config, weights=FLAGS.weights,
                classes=FLAGS.classes or (len(names) if names else imagenet.NUM_CLASSES),
                input_shape=(FLAGS.crop_size, FLAGS.crop_size, 3),
                width_multiplier=FLAGS.width_multiplier)
            print(f"Exporting config {FLAGS.config} ...", flush=True)
            path = serving.export_saved_model(
                model, FLAGS.export_base, version=FLAGS.version, warmup=FLAGS.warmup,
                model_name=FLAGS.model_name or configs.get(FLAGS.config).model_name,
                options=serving.ServingOptions(
                    **{"test_scale": image_ops.TEST_SCALE, "preprocessing": FLAGS.preprocessing,
                       **options}),
                class_names=names)
    except (ValueError, FileExistsError, OSError) as error:
        raise SystemExit(f"export_saved_model.py: error: {error}") from error
    base = os.path.abspath(FLAGS.export_base)
    model_name = os.path.basename(os.path.dirname(path))
    print(f"Wrote {path} (Q={serving.read_options(path).test_scale})\nServe it with:\n  "
          f"docker run --rm -p 8500:8500 -p 8501:8501 -v {base}:/models "
          f"-e MODEL_NAME={model_name} tensorflow/serving")


if __name__ == "__main__":
    app.run(main)

"""`keras-vgg-export` (also `export/export_saved_model.py`): a trained net as a
variable-size SavedModel laid out for TF-Serving (`keras_vgg.serving`).

    keras-vgg-export --model_dir=runs/mine --export_base=exported
    keras-vgg-export --config=D --weights=imagenet --export_base=exported

The net (`keras_vgg.nets`) gives the network, its preprocessing, its classes' names (the
served `top_k_names`), Q (a run's S, or (S_min + S_max) / 2 when jittered; what weights
record) and the model's name: the run directory's name, or the config's (`vgg16`). It writes
`<export_base>/<model_name>/<version>/` (the next free version by default) with the warmup
requests TF-Serving replays at load, rewrites `<export_base>/models.config` to serve every
model there, and prints the commands that serve and query it.
"""

from __future__ import annotations

import os

from absl import flags

from keras_vgg import image_ops, runs, serving
from keras_vgg.cli import net_flags, one_line_errors, refuse_arguments, run_console

FLAGS = flags.FLAGS
PROGRAM = "keras-vgg-export"
# The TF-Serving image the printed commands and export/docker-compose.yml use.
TF_SERVING_IMAGE = "tensorflow/serving:2.20.0"


def define_flags(flag_values: flags.FlagValues = FLAGS) -> None:
    net_flags.define(flag_values, saved_model=False)
    flags.DEFINE_string("export_base", None, "TF-Serving's model base directory.",
                        flag_values=flag_values)
    flags.DEFINE_string("model_name", None, "Served model name; default the run directory's "
                        "name, or the config's (vgg16).", flag_values=flag_values)
    flags.DEFINE_integer("version", None, "Version number; default the next free one.",
                         flag_values=flag_values)
    flags.DEFINE_integer("test_scale", None, "Q: images are rescaled to this shorter side; "
                         "default the net's.", flag_values=flag_values)
    flags.DEFINE_integer("top_k", None, "Best classes named in each answer; default "
                         f"{serving.DEFAULT_TOP_K}, or every class of a net with fewer.",
                         lower_bound=1, flag_values=flag_values)
    flags.DEFINE_bool("flip", False, "Average with the mirror image (the paper; twice the "
                      "compute).", flag_values=flag_values)
    flags.DEFINE_bool("score_map", False, "Also return the class score map "
                      "(serving_default).", flag_values=flag_values)
    flags.DEFINE_enum("pixel_dtype", "uint8", ["uint8", "float32"], "serving_default's input "
                      "dtype.", flag_values=flag_values)
    flags.DEFINE_bool("warmup", True, "Write assets.extra/tf_serving_warmup_requests.",
                      flag_values=flag_values)
    flags.DEFINE_integer("max_pixels", image_ops.MAX_PIXELS, "The largest image served, in "
                         "pixels (image_bytes reads it from each file's header before "
                         "decoding).", flag_values=flag_values)
    flags.DEFINE_string("localisation_dir", None, "With --model_dir: a localisation run on "
                        "its classes (Appendix A); the signatures then also return `boxes`.",
                        flag_values=flag_values)
    flags.mark_flag_as_required("export_base", flag_values=flag_values)


def serving_commands(path: str) -> list[str]:
    """The shell commands that serve the version directory `path` with TF-Serving
    (Docker) and ask it for an image's classes over REST."""
    base = os.path.abspath(os.path.dirname(os.path.dirname(path)))
    name = os.path.basename(os.path.dirname(path))
    body = ('{"signature_name": "image_bytes", "instances": [{"image_bytes": {"b64": '
            '"\'$(base64 -w0 IMAGE.jpg)\'"}}]}')
    return [f"docker run --rm -p 8500:8500 -p 8501:8501 -v {base}:/models "
            f"-e MODEL_NAME={name} {TF_SERVING_IMAGE}",
            f"curl -s localhost:8501/v1/models/{name}:predict -d '{body}'"]


def export(flag_values: flags.FlagValues) -> str:
    """Writes the export the flags ask for; returns its version directory."""
    (net,) = net_flags.nets_from_flags(flag_values)
    options = {"top_k": flag_values.top_k, "flip": flag_values.flip,
               "score_map": flag_values.score_map, "pixel_dtype": flag_values.pixel_dtype,
               "max_pixels": flag_values.max_pixels}
    if flag_values.test_scale:
        options["test_scale"] = flag_values.test_scale
    localisation_run = None
    if flag_values.localisation_dir:
        if not flag_values.model_dir:
            raise ValueError("--localisation_dir goes with --model_dir")
        localisation_run = runs.load(flag_values.localisation_dir)
    print(f"Exporting {net.name} (config {net.config}, {net.num_classes} classes, "
          f"Q={options.get('test_scale', net.test_scale)}) ...", flush=True)
    return serving.export_net(net, flag_values.export_base, model_name=flag_values.model_name,
                              version=flag_values.version, warmup=flag_values.warmup,
                              localisation_run=localisation_run, **options)


def main(argv, flag_values: flags.FlagValues = FLAGS) -> None:
    refuse_arguments(argv)
    with one_line_errors(PROGRAM, OSError):
        path = export(flag_values)
    serve, ask = serving_commands(path)
    base = os.path.dirname(os.path.dirname(path))
    print(f"Wrote {path}\nServe it with TF-Serving (Docker; every model in {base}: add "
          f"--model_config_file=/models/{serving.MODEL_CONFIG_FILE}):\n  {serve}\nAsk it "
          f"for an image's classes:\n  {ask}")


def run() -> None:
    """The console command."""
    define_flags()
    run_console(main)

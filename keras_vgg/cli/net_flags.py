"""The flags that say which net a command uses (`keras_vgg.nets.Net`): a training run's
directory, an export, or a config with weights and what the weights need. Eval, export,
predict and transfer define them here, once."""

from __future__ import annotations

from absl import flags

from keras_vgg import imagenet, nets
from keras_vgg.image_ops import CROP_SIZE

# What --weights needs besides the file; a run directory or an export says it itself.
NETWORK_FLAGS = ("config", "classes", "class_names", "crop_size", "width_multiplier",
                 "preprocessing")


def define(flag_values: flags.FlagValues, *, several: bool = False,
           saved_model: bool = True) -> None:
    """Defines --model_dir, --weights (and --saved_model) with the network flags; with
    `several`, comma-separated lists of nets (fusion)."""
    define_source = flags.DEFINE_list if several else flags.DEFINE_string
    more = ", or several, comma-separated, to fuse" if several else ""
    define_source("model_dir", None, f"A training run's directory: the net, its weights and "
                  f"settings{more}.", flag_values=flag_values)
    define_source("weights", None, "Instead: 'imagenet' (Keras' VGG16/VGG19), a weights file "
                  "(Keras, torchvision, timm) or a KerasHub preset folder, with --config"
                  f"{more}.", flag_values=flag_values)
    sources = ["model_dir", "weights"]
    if saved_model:
        flags.DEFINE_string("saved_model", None, "Instead: an exported version directory "
                            "(keras-vgg-export).", flag_values=flag_values)
        sources.append("saved_model")
    define_source("config", None, "With --weights: A, A-LRN, B, C, D, E, a variant or a "
                  "torchvision name (vgg16)" + ("; one for every weights file, or one for all"
                                                if several else "") + "; default D.",
                  flag_values=flag_values)
    flags.DEFINE_integer("classes", None, "With --weights: the net's classes; default the "
                         "--class_names count, or 1000 (ImageNet's).", flag_values=flag_values)
    flags.DEFINE_string("class_names", None, "With --weights: a text file with one class name "
                        "per line, in label order; default ImageNet's names.",
                        flag_values=flag_values)
    flags.DEFINE_integer("crop_size", CROP_SIZE, "With --weights: their training crop side.",
                         flag_values=flag_values)
    flags.DEFINE_float("width_multiplier", None, "With --weights: the trained network's width; "
                       "default the preset's, or 1.0.", flag_values=flag_values)
    flags.DEFINE_enum("preprocessing", None, list(imagenet.PREPROCESSING_MODES),
                      "With --weights: default the weights' own (caffe for Keras', torch for "
                      "torchvision/timm ones, a preset's converter).", flag_values=flag_values)
    flags.mark_flags_as_mutual_exclusive(sources, required=True, flag_values=flag_values)


def read_class_names(path: str) -> list[str]:
    """One name per non-empty line of a text file."""
    try:
        with open(path, encoding="utf8") as file:
            return [line.strip() for line in file if line.strip()]
    except OSError as error:
        raise ValueError(f"--class_names={path}: cannot read it ({error.strerror})") from error


def nets_from_flags(flag_values: flags.FlagValues, *,
                    class_names: list[str] | None = None) -> list[nets.Net]:
    """The nets the flags name (one, or several with `define(several=True)`); with
    --weights, `class_names` stand in for the flags' (the data's classes, say).

    Raises:
      ValueError: network flags beside a run or an export, config and weights lists of
        different lengths, or what `nets.Net` refuses.
    """
    given = [f"--{name}" for name in NETWORK_FLAGS if flag_values[name].present]
    listed = [name for name in ("model_dir", "saved_model") if name in flag_values
              and flag_values[name].value]
    if listed:
        if given:
            raise ValueError(f"--{listed[0]} describes the network: drop {', '.join(given)}")
        if listed[0] == "saved_model":
            return [nets.Net.of_saved_model(flag_values.saved_model)]
        return [nets.Net.of_run(path) for path in _as_list(flag_values.model_dir)]
    weights = _as_list(flag_values.weights)
    configs = _as_list(flag_values.config) or ["D"]
    if len(configs) == 1:
        configs = configs * len(weights)
    if len(configs) != len(weights):
        raise ValueError(f"{len(weights)} --weights and {len(configs)} --config: give one "
                         "config for each, or one for all")
    if flag_values.class_names:
        class_names = read_class_names(flag_values.class_names)
    elif flag_values.classes:
        class_names = None
    return [nets.Net.of_weights(
        config, path, preprocessing=flag_values.preprocessing, classes=flag_values.classes,
        class_names=class_names, crop_size=flag_values.crop_size,
        width_multiplier=flag_values.width_multiplier)
        for config, path in zip(configs, weights, strict=True)]


def _as_list(value) -> list[str]:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]

"""Weight sources, and what each one's weights expect.

As timm's pretrained configs do, a source of trained weights carries the input it was
trained with, so that nobody pairs weights with preprocessing by hand:

    source                                preprocessing            Q (single-scale)
    "imagenet": Keras Applications' files  caffe (BGR, mean          384, and {256, 384, 512}
      (the authors' released D and E,      subtracted)               (Sect. 3.2)
      trained at S in [256, 512])
    torchvision / timm .pth, .pt, .bin,    torch (x / 255, ImageNet  256 (their evaluation's
      .safetensors                         mean and std)             resize before the crop)
    a KerasHub preset folder               its image_converter.json  256
                                           (torch for KerasHub's VGG
                                           presets, ported from timm)
    a Keras .weights.h5, .h5 or .keras     caffe: keras.applications' convention (the file
                                           does not record it); Q as "imagenet"

A training run's directory records its own (`keras_vgg.runs`); `keras_vgg.nets` puts both
kinds behind one type. `resolve_preprocessing` refuses a preprocessing that contradicts
what a source records, and warns where the source's is only a convention.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from collections.abc import Collection

import keras
import numpy as np

from keras_vgg import configs, files, imagenet, kerashub, weights

IMAGENET = "imagenet"
FORMATS = ("imagenet", "keras", "torch", "kerashub")
# torchvision's and timm's VGG evaluation: resize the shorter side to 256, crop 224.
TORCH_TEST_SCALE = 256
# KerasHub's ImageConverter computes `x * scale + offset` on [0, 255] RGB pixels.
_CONVERTER_FILE = "image_converter.json"
_TORCH_MEAN = np.array([0.485, 0.456, 0.406])
_TORCH_STD = np.array([0.229, 0.224, 0.225])
_CONVERTER_MODES = {
    "torch": (1 / (255 * _TORCH_STD), -_TORCH_MEAN / _TORCH_STD),
    "tf": (np.full(3, 1 / 127.5), np.full(3, -1.0)),
}


@dataclasses.dataclass(frozen=True)
class Pretrained:
    """A source of trained weights and the input they expect.

    Attributes:
      location: "imagenet", or the absolute path of a file or KerasHub preset folder.
      format: one of `FORMATS`.
      preprocessing: the `keras_vgg.preprocess_input` mode the weights were trained with.
      recorded: whether the source records `preprocessing` ("imagenet", a preset with an
        image converter), rather than it being the convention for the file's format.
      test_scales: the Q set to test at (px), the single-scale Q in the middle.
      config: the network, where the source says (KerasHub presets), else None.
      width_multiplier: its width, where the source says, else None.
      has_head: whether it holds fc1, fc2 and predictions (KerasHub backbone presets: no).
    """

    location: str
    format: str
    preprocessing: str
    recorded: bool
    test_scales: tuple[int, ...]
    config: configs.VGGConfig | None = None
    width_multiplier: float | None = None
    has_head: bool = True

    @property
    def test_scale(self) -> int:
        """The single-scale Q (px)."""
        return self.test_scales[len(self.test_scales) // 2]


def identify(location: str | os.PathLike) -> Pretrained:
    """What `location` ("imagenet", a weights file or a KerasHub preset folder) is.

    Raises:
      ValueError: no such file or folder, or a file of no known weights format.
    """
    location = os.fspath(location)
    if location == IMAGENET:
        return Pretrained(IMAGENET, "imagenet", "caffe", True, configs.MULTI_SCALE_TEST_SCALES)
    path = os.path.abspath(location)
    if kerashub.is_preset(path):
        config, width = kerashub.preset_config(path)
        mode = _converter_mode(path)
        return Pretrained(path, "kerashub", mode or "caffe", mode is not None,
                          (TORCH_TEST_SCALE,), config, width,
                          has_head=os.path.isfile(os.path.join(path, kerashub.TASK_WEIGHTS)))
    if os.path.isdir(path):
        raise ValueError(f"{location}: a folder that is neither a KerasHub preset (no "
                         f"{kerashub.CONFIG_FILE}) nor a training run (no run.json)")
    if not os.path.isfile(path):
        raise ValueError(f"{location}: no such weights file, preset or run directory "
                         "(or 'imagenet')")
    lower = path.lower()
    if lower.endswith(weights.TORCH_SUFFIXES + (weights.SAFETENSORS_SUFFIX,)):
        return Pretrained(path, "torch", "torch", False, (TORCH_TEST_SCALE,))
    if lower.endswith(weights.KERAS_SUFFIXES):
        return Pretrained(path, "keras", "caffe", False, configs.MULTI_SCALE_TEST_SCALES)
    raise ValueError(f"weights file {location!r}: unknown format; expected a Keras file "
                     f"{weights.KERAS_SUFFIXES}, a torchvision/timm checkpoint "
                     f"{weights.TORCH_SUFFIXES + (weights.SAFETENSORS_SUFFIX,)} or a KerasHub "
                     "preset folder")


def _converter_mode(path: str) -> str | None:
    """The preprocessing mode a preset's image converter computes, or None when it has no
    converter (or one that matches no mode)."""
    converter = os.path.join(path, _CONVERTER_FILE)
    if not os.path.isfile(converter):
        return None
    document = files.read_json(converter, what="KerasHub image converter")
    settings = document.get("config") if isinstance(document, dict) else None
    scale, offset = (settings.get(key) for key in ("scale", "offset")) if isinstance(
        settings, dict) else (None, None)
    if scale is None or offset is None:
        return None
    try:
        scale = np.broadcast_to(np.asarray(scale, float), (3,))
        offset = np.broadcast_to(np.asarray(offset, float), (3,))
    except (TypeError, ValueError) as error:
        raise ValueError(f"{converter}: scale and offset must be a number or 3 numbers "
                         f"({error})") from error
    for mode, (mode_scale, mode_offset) in _CONVERTER_MODES.items():
        if np.allclose(scale, mode_scale, rtol=1e-3) and np.allclose(offset, mode_offset,
                                                                      rtol=1e-3):
            return mode
    return None


def resolve_preprocessing(source: Pretrained, given: str | None) -> str:
    """The preprocessing to use with `source`: `given`, or the source's. A `given` one
    that contradicts what the source records is refused; one that differs from its
    format's convention is used, with a warning.

    Raises:
      ValueError: `given` contradicts the preprocessing `source` records.
    """
    if given is None or given == source.preprocessing:
        return source.preprocessing
    if given not in imagenet.PREPROCESSING_MODES:
        raise ValueError(f"preprocessing={given!r}: expected one of "
                         f"{imagenet.PREPROCESSING_MODES}")
    if source.recorded:
        raise ValueError(f"preprocessing={given!r} contradicts {source.location}, whose "
                         f"weights were trained with {source.preprocessing!r}: leave it unset")
    warnings.warn(f"preprocessing={given!r} for {source.location}: {source.format} weights "
                  f"are usually trained with {source.preprocessing!r}; using {given!r} as "
                  "given", stacklevel=2)
    return given


def load(model: keras.Model, source: Pretrained | str | os.PathLike, *,
         config: str | configs.VGGConfig, new_layers: Collection[str] = ()) -> list[str]:
    """Loads a weight source into `model` (a keras_vgg model of `config`), all or nothing,
    through `keras_vgg.weights`' checks. `new_layers` may be missing from the source or
    have other shapes there (a new classifier): those keep their initialisation, and their
    names are returned.

    Raises:
      ValueError: the source cannot be read, or does not fit the model; the message names
        the source and the first layer that does not fit.
    """
    if not isinstance(source, Pretrained):
        source = identify(source)
    if source.format == "imagenet":
        path = weights.fetch_imagenet_weights(
            configs.get(config),
            include_top=configs.PREDICTIONS_LAYER in {layer.name for layer in model.layers})
        return weights.load_weights(model, path, new_layers=new_layers)
    if source.format == "kerashub":
        return kerashub.load_preset(model, source.location, new_layers=new_layers)
    return weights.load_weights(model, source.location, new_layers=new_layers)

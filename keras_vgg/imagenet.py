"""ImageNet conventions: input preprocessing per weight source, and class names offline.

Which preprocessing goes with which weights:
  - Keras' official VGG16/VGG19 files (Caffe ports): mode "caffe", RGB -> BGR, minus the
    BGR mean (103.939, 116.779, 123.68), no scaling. The default, as in keras.applications.
  - torchvision / timm checkpoints: mode "torch", x / 255, minus mean (0.485, 0.456, 0.406),
    divided by std (0.229, 0.224, 0.225), RGB.
  - mode "tf": x / 127.5 - 1.
"""

from __future__ import annotations

import functools
import importlib.resources
import json

import keras
import numpy as np

PREPROCESSING_MODES = ("caffe", "torch", "tf")
NUM_CLASSES = 1000


def preprocess_input(x, data_format: str | None = None, mode: str = "caffe"):
    """keras.applications' preprocessing: `[..., 3]` RGB in [0, 255] -> model input.

    With the default `mode="caffe"` this is exactly `keras.applications.vgg16.preprocess_input`
    (it calls the same Keras function).
    """
    if mode not in PREPROCESSING_MODES:
        raise ValueError(
            f"unknown preprocessing mode {mode!r}; expected one of {PREPROCESSING_MODES}"
        )
    return keras.applications.imagenet_utils.preprocess_input(
        x, data_format=data_format, mode=mode
    )


@functools.cache
def channel_affine(mode: str) -> tuple[np.ndarray, np.ndarray]:
    """`preprocess_input(x, mode=mode)` of one RGB pixel `x` (`[3]`, in [0, 255]) written as
    `x @ matrix + bias`: `(matrix [3, 3], bias [3])`, float32. Every mode is such a map (a
    channel reversal or a scaling, then a shift), so it is read from `preprocess_input`
    itself, at black and the three full primaries (255: a unit step would lose digits to
    the shift)."""
    if mode not in PREPROCESSING_MODES:
        raise ValueError(
            f"unknown preprocessing mode {mode!r}; expected one of {PREPROCESSING_MODES}"
        )
    pixels = np.concatenate([np.zeros((1, 3)), 255 * np.eye(3)]).astype("float32")
    mapped = np.asarray(preprocess_input(pixels[None, None], mode=mode), "float64")[0, 0]
    return ((mapped[1:] - mapped[0]) / 255).astype("float32"), mapped[0].astype("float32")


@functools.cache
def class_index() -> dict[int, tuple[str, str]]:
    """`{class id: (WordNet synset id, readable name)}` for the 1000 ILSVRC-2012 classes.

    Shipped with the package (keras.applications downloads the same file), in the order of
    the synset ids, which is the order TFDS `imagenet2012` labels use.
    """
    text = (
        importlib.resources.files("keras_vgg")
        .joinpath("resources/imagenet_class_index.json")
        .read_text(encoding="utf8")
    )
    return {int(key): (synset, name) for key, (synset, name) in json.loads(text).items()}


def synsets() -> tuple[str, ...]:
    """The 1000 WordNet synset ids in label order (`class_index`'s)."""
    return tuple(synset for synset, _ in class_index().values())


def decode_predictions(preds, top: int = 5) -> list[list[tuple[str, str, float]]]:
    """keras.applications' `decode_predictions`, offline.

    Args:
      preds: `[batch, 1000]` class probabilities (or logits).
      top: how many classes per image.

    Returns:
      Per image, the `top` most probable `(synset_id, class_name, score)`, best first.
    """
    preds = np.asarray(keras.ops.convert_to_numpy(preds))
    if preds.ndim != 2 or preds.shape[1] != NUM_CLASSES:
        raise ValueError(
            "`decode_predictions` expects a batch of predictions (i.e. a 2D array of shape "
            f"(samples, {NUM_CLASSES})). Received array with shape: {preds.shape}"
        )
    if not 1 <= top <= NUM_CLASSES:
        raise ValueError(f"`top` must be in [1, {NUM_CLASSES}]. Received top={top}")
    classes = class_index()
    results = []
    for row in preds:
        best = np.argsort(row)[::-1][:top]
        results.append([(*classes[int(i)], float(row[i])) for i in best])
    return results

"""KerasHub VGG presets: their weights into keras_vgg models, and keras_vgg weights out as
presets KerasHub loads.

A preset directory, as `keras_hub.models.VGGBackbone.save_to_preset` writes it:

    config.json        {"class_name": "VGGBackbone", "config": {"stackwise_num_repeats":
                        [2, 2, 3, 3, 3], "stackwise_num_filters": [64, ...], ...}, ...}
    model.weights.h5   the backbone's conv layers, named `block{b}_conv{i}` as ours
    metadata.json
    task.json, task.weights.h5   (a `VGGImageClassifier` preset) its head: fc1, fc2 and
                       predictions, as 7x7 and 1x1 convolutions or as dense layers

KerasHub's backbone is Table 1's 3x3 networks (A, B, D, E) without LRN; its presets'
`image_converter.json` says how they preprocess. Nothing here imports keras_hub: the files
are Keras' own formats, read with `keras_vgg.weights`' checks.

The preset's config names the network: its convolutions per stage give A, B, D or E
(KerasHub has no C, LRN or batch norm) and its filters the width. A classifier preset's head
(7x7 and 1x1 convolutions, or dense layers) becomes fc1, fc2 and predictions; its kernels are
reshaped, so the preset must match the model's 224 crop and class count.
`tests/test_kerashub.py` checks every direction against keras_hub itself, with random weights.
"""

from __future__ import annotations

import datetime
import json
import os
from collections.abc import Collection

import h5py
import keras
import numpy as np

from keras_vgg import configs, files, weights
from keras_vgg.layers import LocalResponseNormalization

CONFIG_FILE = "config.json"
METADATA_FILE = "metadata.json"
BACKBONE_WEIGHTS = "model.weights.h5"
TASK_WEIGHTS = "task.weights.h5"
BACKBONE_CLASS = "VGGBackbone"
BACKBONE_MODULE = "keras_hub.src.models.vgg.vgg_backbone"


def is_preset(path: str | os.PathLike) -> bool:
    """Whether `path` is a directory holding a KerasHub preset's config.json."""
    return os.path.isfile(os.path.join(os.fspath(path), CONFIG_FILE))


def preset_config(path: str | os.PathLike) -> tuple[configs.VGGConfig, float]:
    """The Table 1 config and width multiplier of a KerasHub VGG preset directory.

    Raises:
      ValueError: not a VGGBackbone preset, or a network Table 1 does not have.
    """
    path = os.fspath(path)
    document = files.read_json(os.path.join(path, CONFIG_FILE), what="KerasHub preset config")
    if not isinstance(document, dict) or not isinstance(document.get("config", {}), dict):
        raise ValueError(f"{path}: {CONFIG_FILE} is not a KerasHub preset config (an object "
                         'with "class_name" and "config")')
    if document.get("class_name") != BACKBONE_CLASS:
        raise ValueError(f"{path}: a KerasHub preset of {document.get('class_name')!r}, not "
                         f"of {BACKBONE_CLASS}")
    backbone = document.get("config", {})
    repeats, filters = (backbone.get(key, ()) for key in ("stackwise_num_repeats",
                                                          "stackwise_num_filters"))
    if not all(isinstance(values, list | tuple) and all(
            isinstance(value, int) and not isinstance(value, bool) and value > 0
            for value in values) for values in (repeats, filters)):
        raise ValueError(f"{path}: stackwise_num_repeats and stackwise_num_filters in "
                         f"{CONFIG_FILE} must be lists of positive integers")
    repeats, filters = tuple(repeats), tuple(filters)
    matches = [config for config in configs.TABLE_1.values()
               if not config.lrn and tuple(map(len, config.kernel_sizes)) == repeats
               and all(size == 3 for sizes in config.kernel_sizes for size in sizes)]
    if not matches or len(filters) != len(configs.STAGE_WIDTHS):
        raise ValueError(f"{path}: a VGGBackbone with {list(repeats)} convs per stage and "
                         f"filters {list(filters)} is none of Table 1's 3x3 networks")
    width = filters[0] / configs.STAGE_WIDTHS[0]
    if [configs.scaled_width(stage, width) for stage in configs.STAGE_WIDTHS] != list(filters):
        raise ValueError(f"{path}: filters {list(filters)} are not Table 1's widths "
                         f"{list(configs.STAGE_WIDTHS)} times one multiplier")
    return matches[0], width


def _task_head(file: h5py.File) -> dict[str, list[h5py.Dataset]]:
    """`{fc1, fc2, predictions: [kernel, bias]}` (lazy datasets) in a classifier preset's
    task weights, found by the layer names Keras records on each `vars` group."""
    groups = []
    file.visititems(lambda name, item: groups.append(item) if (
        isinstance(item, h5py.Group) and name.endswith("vars")) else None)
    found = {}
    for group in groups:
        name = group.attrs.get("name")
        name = name.decode() if isinstance(name, bytes) else name
        if name in configs.HEAD_LAYERS and len(group) == 2:
            found[name] = [group["0"], group["1"]]
    return found


def _as_dense(layer: keras.layers.Layer, kernel: h5py.Dataset, source: str) -> np.ndarray:
    """A 7x7 or 1x1 conv kernel `[kh, kw, c, units]` (or a dense one) of the task weights as
    `layer`'s dense kernel `[kh * kw * c, units]`, checked before it is read."""
    expected = tuple(layer.kernel.shape)
    if np.prod(kernel.shape[:-1]) != expected[0] or kernel.shape[-1] != expected[-1]:
        raise ValueError(f"{source}: layer {layer.name!r} expects a kernel of shape "
                         f"{expected}, the preset has {tuple(kernel.shape)}; is it a preset of "
                         "another configuration, width, crop or class count?")
    weights.check_floating(kernel.dtype, what=f"layer {layer.name!r}, weight 'kernel'",
                           source=source)
    return np.reshape(kernel[()], expected)


def load_preset(model: keras.Model, path: str | os.PathLike, *,
                new_layers: Collection[str] = ()) -> list[str]:
    """Loads a KerasHub VGG preset directory into `model` (a keras_vgg model of the same
    config and width): the conv layers from model.weights.h5, and, for a model with its
    head, fc1/fc2/predictions from a classifier preset's task.weights.h5 (7x7 and 1x1 conv
    kernels become dense ones). All or nothing, with `keras_vgg.weights`' checks.

    `new_layers` (e.g. `("predictions",)`) may be missing from the preset or have other
    shapes there (a backbone preset has no head); those keep their initialisation, and
    their names are returned.

    Raises:
      ValueError: not a VGG preset, another network, or a head the preset lacks.
    """
    path = os.fspath(path)
    preset_config(path)  # raises for what is not a VGG backbone preset
    names = {layer.name for layer in model.layers}
    with weights.open_keras_file(os.path.join(path, BACKBONE_WEIGHTS)) as found:
        found = dict(found)
        if configs.PREDICTIONS_LAYER not in names:
            return weights.assign_weights(model, found, source=path, new_layers=new_layers)
        task = os.path.join(path, TASK_WEIGHTS)
        if not os.path.isfile(task):
            if set(configs.HEAD_LAYERS) <= set(new_layers):
                return weights.assign_weights(model, found, source=path,
                                              new_layers=new_layers)
            raise ValueError(f"{path}: a backbone preset holds no fc1, fc2 or predictions; "
                             "build the model with include_top=False, or load a "
                             "VGGImageClassifier preset")
        with h5py.File(task, "r") as file:
            weights.check_self_contained(file, task)
            head = _task_head(file)
            missing = sorted(set(configs.HEAD_LAYERS) - set(head) - set(new_layers))
            if missing:
                raise ValueError(f"{task}: no weights for {missing}")
            for name, (kernel, bias) in head.items():
                layer = model.get_layer(name)
                if name in new_layers and (np.prod(kernel.shape) != np.prod(
                        layer.kernel.shape) or kernel.shape[-1] != layer.kernel.shape[-1]):
                    continue  # another class count: the layer stays new
                found[name] = [_as_dense(layer, kernel, task), bias]
            return weights.assign_weights(model, found, source=path, new_layers=new_layers)


def save_preset(model: keras.Model, path: str | os.PathLike) -> str:
    """Writes the conv layers of `model` (a keras_vgg model of a 3x3 config without LRN or
    batch norm) as a KerasHub VGGBackbone preset directory; returns it."""
    path = os.fspath(path)
    layers = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    stages: dict[int, int] = {}
    for layer in layers:
        stage = int(layer.name[len("block"):].split("_")[0])
        stages[stage] = stages.get(stage, 0) + 1
    if any(layer.kernel_size != (3, 3) for layer in layers) or any(
            isinstance(layer, (keras.layers.BatchNormalization, LocalResponseNormalization))
            for layer in model.layers):
        raise ValueError(f"model {model.name!r}: KerasHub's VGGBackbone has 3x3 convs only, "
                         "without LRN or batch norm")
    filters = [next(layer.filters for layer in layers if layer.name.startswith(f"block{b}_"))
               for b in sorted(stages)]
    image_shape = list(model.input_shape[1:]) if configs.FLATTEN_LAYER not in {
        layer.name for layer in model.layers} else [None, None, model.input_shape[-1]]
    os.makedirs(path, exist_ok=True)
    document = {
        "module": BACKBONE_MODULE, "class_name": BACKBONE_CLASS,
        "config": {"name": f"{model.name}_backbone", "trainable": True,
                   "stackwise_num_repeats": [stages[b] for b in sorted(stages)],
                   "stackwise_num_filters": filters, "image_shape": image_shape},
        "registered_name": f"keras_hub>{BACKBONE_CLASS}",
    }
    with open(os.path.join(path, CONFIG_FILE), "w", encoding="utf8") as file:
        json.dump(document, file, indent=4)
    backbone = keras.Model(model.inputs, model.get_layer(configs.pool_layer(max(stages))).output,
                           name=document["config"]["name"])
    backbone.save_weights(os.path.join(path, BACKBONE_WEIGHTS))
    with open(os.path.join(path, METADATA_FILE), "w", encoding="utf8") as file:
        json.dump({"keras_version": keras.version(), "parameter_count": backbone.count_params(),
                   "date_saved": datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S"),
                   "tasks": ["ImageClassifier"], "written_by": "keras_vgg"}, file, indent=4)
    return path

"""Localisation nets (Appendix A.1): a classification net whose last fully-connected layer
predicts a bounding box instead of class scores.

A box is `(centre x, centre y, width, height)` relative to the net's input window
(`keras_vgg.boxes`). Single-class regression (SCR) predicts one box shared by all classes
(4 outputs); per-class regression (PCR) one box per class (4 x classes outputs). Training
minimises the Euclidean loss between the predicted box and the ground truth; for PCR only
the ground-truth class's box counts.

Targets are `[batch, 6]` float32: `(label, centre x, centre y, width, height, weight)`,
weight 0 for a crop that shows no part of its object (`keras_vgg.localisation_data`).

A localisation run started from a classification run (`init_from`) takes every other layer
from it and fine-tunes all layers (better than the FC layers alone, in the paper), at the
paper's fine-tuning rate 1e-3 scaled to the batch.
"""

from __future__ import annotations

import keras
from keras import ops

from keras_vgg import boxes as box_ops
from keras_vgg import configs

MODES = ("scr", "pcr")
BOX_LAYER = "boxes"
# Appendix A.1: "the learning rate was initially set to 10^-3" (batch 256).
BOX_LEARNING_RATE = 1e-3
TARGET_SIZE = 6


def localisation_model(classifier: keras.Model, mode: str, **dense_options) -> keras.Model:
    """`classifier` (a keras_vgg model with its head) with its `predictions` layer replaced
    by a linear `boxes` layer: `[batch, 4]` (SCR) or `[batch, 4 * classes]` (PCR, class c's
    box at `4c : 4c + 4`). Every other layer is the classifier's own (shared, with its
    weights); the new layer starts as `dense_options` say (kernel_initializer...)."""
    if mode not in MODES:
        raise ValueError(f"box regression must be one of {MODES}, got {mode!r}")
    try:
        predictions = classifier.get_layer(configs.PREDICTIONS_LAYER)
    except ValueError as error:
        raise ValueError(f"model {classifier.name!r} has no {configs.PREDICTIONS_LAYER!r} "
                         "layer to replace "
                         "(built with include_top=False?)") from error
    units = 4 if mode == "scr" else 4 * predictions.units
    boxes = keras.layers.Dense(units, name=BOX_LAYER, dtype="float32", **dense_options)(
        predictions.input)
    return keras.Model(classifier.inputs, boxes, name=f"{classifier.name}_{mode}")


def mode_of(model: keras.Model) -> tuple[str, int]:
    """`(mode, classes)` of a localisation model: ("scr", None) or ("pcr", classes)."""
    units = model.get_layer(BOX_LAYER).units
    return ("scr", None) if units == 4 else ("pcr", units // 4)


def labelled_class_box(predicted, labels, mode: str):
    """The predicted box of each example's class: `[batch, 4]` from `[batch, 4]` (SCR) or
    `[batch, 4 * classes]` (PCR)."""
    if mode == "scr":
        return predicted
    # Row `i * classes + label` of the boxes one per row: a gather with int32 indices.
    # (Keras' take_along_axis builds int64 ones, for which TensorFlow's oneDNN build logs
    # an "E0000 ... oneDNN supports DT_INT64 only ..." line in a training run's output.)
    batch, classes = ops.shape(predicted)[0], ops.shape(predicted)[1] // 4
    rows = ops.arange(batch, dtype="int32") * classes + ops.cast(labels, "int32")
    return ops.take(ops.reshape(predicted, (-1, 4)), rows, axis=0)


@keras.saving.register_keras_serializable("keras_vgg")
class BoxLoss(keras.losses.Loss):
    """Euclidean loss `|box - target|^2 / 2` (Caffe's), of the ground-truth class's box for
    PCR, times the target's weight."""

    def __init__(self, mode: str = "pcr", name: str = "box_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        self.mode = mode

    def call(self, y_true, y_pred):
        y_true = ops.cast(y_true, y_pred.dtype)
        box = labelled_class_box(y_pred, y_true[:, 0], self.mode)
        return 0.5 * ops.sum(ops.square(box - y_true[:, 1:5]), axis=-1) * y_true[:, 5]

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}


def centre_iou(a, b):
    """Intersection over union of centre boxes `[batch, 4]` (Keras ops)."""
    def corners(centre):
        return ops.concatenate([centre[:, :2] - centre[:, 2:] / 2,
                                centre[:, :2] + centre[:, 2:] / 2], axis=-1)

    return box_ops.overlap(corners(a), corners(b))


@keras.saving.register_keras_serializable("keras_vgg")
class BoxAccuracy(keras.metrics.Mean):
    """The fraction of crops whose predicted box (of the true class) overlaps the target by
    an IoU above 0.5, among crops with a target (weight > 0). Named "accuracy" in training,
    so that the plateau schedule watches it as it watches classification accuracy."""

    def __init__(self, mode: str = "pcr", name: str = "accuracy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.mode = mode

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = ops.cast(y_true, "float32")
        box = ops.cast(labelled_class_box(y_pred, y_true[:, 0], self.mode), "float32")
        hit = ops.cast(centre_iou(box, y_true[:, 1:5]) > box_ops.IOU_THRESHOLD, "float32")
        return super().update_state(hit, sample_weight=y_true[:, 5])

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}

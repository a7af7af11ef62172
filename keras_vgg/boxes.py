"""Bounding-box arithmetic for localisation (Appendix A): coordinates through the data
pipeline's geometry, overlap, the greedy merge of dense predictions, and ILSVRC's
localisation error.

Conventions. A box is `(x_min, y_min, x_max, y_max)` ("corners") or `(centre x, centre y,
width, height)` ("centre", the paper's parametrisation, Appendix A.1), in continuous
coordinates: pixel (i, j) covers [j, j + 1) x [i, i + 1). Ground truth is in the original
image's pixels; the localisation net predicts centre boxes relative to its input window,
(0, 0) its top-left corner and (1, 1) its bottom-right.

Geometry. Every training crop and test window is a window `[y, x, height, width]` of the
original image (`keras_vgg.image_ops.crop_window`), so a box follows an isotropic rescale and a
crop in one step, `to_window`; a horizontal flip maps x to 1 - x (`flip`). A dense box
map's positions each saw one window of the rescaled image (`dense_corners`).

Scoring (ILSVRC): an image counts as localised when one of its top-1 (or top-5) (class, box)
guesses names a ground-truth box's class with IoU above 0.5.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np

from keras_vgg.requires_tensorflow import tf

# Appendix A.2: a box is correct if its intersection over union with a ground-truth box of
# the same class is above 0.5.
IOU_THRESHOLD = 0.5


def to_centre(corners):
    """`[..., 4]` corners -> centre boxes (same type: numpy or TF)."""
    x0, y0, x1, y1 = (corners[..., i] for i in range(4))
    stack = tf.stack if tf.is_tensor(corners) else np.stack
    return stack([(x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0], axis=-1)


def to_corners(centre):
    """`[..., 4]` centre boxes -> corners (same type: numpy or TF)."""
    cx, cy, w, h = (centre[..., i] for i in range(4))
    stack = tf.stack if tf.is_tensor(centre) else np.stack
    return stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=-1)


def to_window(corners: tf.Tensor, window: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Boxes in original pixels -> boxes relative to `window` (`[y, x, height, width]` in
    original pixels; (0, 0) its top-left, (1, 1) its bottom-right).

    Returns:
      `[n, 4]` float32 corners, beyond [0, 1] where a box extends beyond the window, and
      `[n]` the area of each box inside the window, as a fraction of the window's.
    """
    corners = tf.cast(corners, tf.float32)
    window = tf.cast(window, tf.float32)
    origin = tf.stack([window[1], window[0], window[1], window[0]])
    size = tf.stack([window[3], window[2], window[3], window[2]])
    relative = (corners - origin) / size
    return relative, area(tf.clip_by_value(relative, 0.0, 1.0))


def _array_ops(*arrays):
    """numpy for numpy arrays, else `keras.ops`, which takes any backend's tensors (and
    TensorFlow graph tensors): the box arithmetic below is written once for both."""
    if all(isinstance(array, np.ndarray | np.generic) for array in arrays):
        return np
    return keras.ops


def area(corners):
    """`[...]` areas of corners `[..., 4]` (0 for empty boxes)."""
    ops = _array_ops(corners)
    return (ops.maximum(corners[..., 2] - corners[..., 0], 0.0)
            * ops.maximum(corners[..., 3] - corners[..., 1], 0.0))


def overlap(a, b):
    """Intersection over union of corners `a` and `b` `[..., 4]`, broadcast against each
    other: `[...]`, 0 where the union is empty. numpy arrays give numpy, tensors tensors."""
    ops = _array_ops(a, b)
    lower = ops.maximum(a[..., :2], b[..., :2])
    upper = ops.minimum(a[..., 2:], b[..., 2:])
    intersection = ops.prod(ops.maximum(upper - lower, 0.0), axis=-1)
    union = area(a) + area(b) - intersection
    return ops.where(union > 0, intersection / ops.maximum(union, 1e-12), 0.0)


def flip(corners):
    """Window-relative corners of the mirrored window: x -> 1 - x."""
    x0, y0, x1, y1 = (corners[..., i] for i in range(4))
    stack = tf.stack if tf.is_tensor(corners) else np.stack
    return stack([1 - x1, y0, 1 - x0, y1], axis=-1)


def from_window(relative, window):
    """Window-relative corners `[..., 4]` -> original pixels, for `window` `[y, x,
    height, width]` (numpy)."""
    y, x, height, width = (float(v) for v in window)
    return np.asarray(relative) * [width, height, width, height] + [x, y, x, y]


def dense_corners(box_map: tf.Tensor, class_ids: tf.Tensor, factor: tf.Tensor, crop: int,
                  stride: int, mode: str) -> tf.Tensor:
    """A localisation net's dense output as boxes in the original image: the output map's
    position (i, j) saw the window `[i * stride, j * stride, crop, crop]` of the image
    rescaled by `factor`.

    Args:
      box_map: `[b, h, w, 4]` (SCR) or `[b, h, w, 4 * classes]` (PCR) centre boxes relative
        to each position's window.
      class_ids: `[b, k]` int32, the classes whose boxes to take (PCR).
      factor: `[2]` (y, x), the rescaled image's size over the original's.

    Returns:
      `[b, k, h * w, 4]` float32 corners in original pixels, positions row-major.
    """
    box_map = tf.convert_to_tensor(box_map, tf.float32)
    shape = tf.shape(box_map)
    batch, height, width = shape[0], shape[1], shape[2]
    k = tf.shape(class_ids)[1]
    ys, xs = tf.meshgrid(tf.range(height), tf.range(width), indexing="ij")
    origin = tf.cast(tf.reshape(tf.stack([xs, ys], axis=-1), [-1, 2]), tf.float32) * stride
    if mode == "scr":
        centre = tf.tile(tf.reshape(box_map, [batch, 1, -1, 4]), [1, k, 1, 1])
    else:
        per_class = tf.reshape(box_map, [batch, height * width, -1, 4])
        centre = tf.transpose(tf.gather(per_class, class_ids, axis=2, batch_dims=1),
                              [0, 2, 1, 3])
    centre_xy = origin + centre[..., :2] * crop
    half = centre[..., 2:] * crop / 2
    factor = tf.cast(factor, tf.float32)
    scale = tf.tile(tf.stack([factor[1], factor[0]]), [2])
    return tf.concat([centre_xy - half, centre_xy + half], axis=-1) / scale


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of every pair of corners `[n, 4]` and `[m, 4]`: `[n, m]`."""
    return overlap(np.asarray(a, np.float64)[:, None], np.asarray(b, np.float64)[None])


def greedy_merge(corners: np.ndarray, scores: np.ndarray, *,
                 overlap: float = IOU_THRESHOLD) -> tuple[np.ndarray, np.ndarray]:
    """OverFeat's greedy merge (Sermanet et al. 2014, Sect. 4.3), as Appendix A.1 uses it:
    spatially close predictions are merged by averaging their coordinates, and each merged
    box is rated by the sum of its members' class scores.

    Boxes are taken in order of score; each joins the first merged box it overlaps by more
    than `overlap` (intersection over union with the merged box so far), else starts one.

    Args:
      corners: `[n, 4]` predicted boxes of one class.
      scores: `[n]` that class's score where each box was predicted.

    Returns:
      `[k, 4]` merged boxes and `[k]` their ratings, best first.
    """
    corners = np.asarray(corners, np.float64).reshape(-1, 4)
    scores = np.asarray(scores, np.float64).reshape(-1)
    members: list[list[int]] = []
    merged: list[np.ndarray] = []
    for index in np.argsort(-scores, kind="stable"):
        if merged:
            overlaps = iou(corners[index][None], np.stack(merged))[0]
            target = int(np.argmax(overlaps > overlap)) if np.any(overlaps > overlap) else None
        else:
            target = None
        if target is None:
            members.append([index])
            merged.append(corners[index])
        else:
            members[target].append(index)
            merged[target] = corners[members[target]].mean(axis=0)
    ratings = np.array([scores[group].sum() for group in members])
    order = np.argsort(-ratings, kind="stable")
    return np.stack(merged)[order] if merged else np.zeros((0, 4)), ratings[order]


def is_localised(predictions: Sequence[tuple[int, np.ndarray]],
                 ground_truth: Sequence[tuple[int, np.ndarray]], k: int = 5) -> bool:
    """ILSVRC's localisation criterion for one image: one of the first `k` predicted
    (class, corners) pairs names a ground-truth box's class and overlaps that box by an
    IoU above `IOU_THRESHOLD`."""
    for label, box in list(predictions)[:k]:
        boxes = [truth for truth_label, truth in ground_truth if truth_label == label]
        if boxes and np.any(iou(np.asarray(box)[None], np.stack(boxes))[0] > IOU_THRESHOLD):
            return True
    return False


def localisation_error(predictions: Sequence[Sequence[tuple[int, np.ndarray]]],
                       ground_truth: Sequence[Sequence[tuple[int, np.ndarray]]],
                       k: int = 5) -> float:
    """The fraction of images not localised (`is_localised`) with `k` guesses each."""
    if len(predictions) != len(ground_truth) or not predictions:
        raise ValueError(f"{len(predictions)} predictions for {len(ground_truth)} images")
    hits = [is_localised(p, t, k) for p, t in zip(predictions, ground_truth, strict=True)]
    return 1.0 - float(np.mean(hits))

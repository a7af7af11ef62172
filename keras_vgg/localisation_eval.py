"""Testing localisation nets (Appendix A.2), under the paper's two protocols, scored by
ILSVRC's localisation error (`keras_vgg.boxes.localisation_error`).

1. Centre crop: the net sees the centre crop at Q and predicts the box of the
   ground-truth class only, which factors out classification errors; top-1 error.
2. Full: the localisation net is applied densely over the whole image at Q (the FC layers
   as convolutions), predicting a box at every position of its output map; the
   classification net, applied densely too, gives the top-5 classes and, at every
   position, each class's score. For each of the top-5 classes, its boxes from every
   position are merged greedily (`boxes.greedy_merge`), rated by the class's scores, and
   the best merged box is the guess for that class. Several localisation nets: the union
   of their boxes is merged. Top-1 and top-5 error.

The paper's reference: VGG won the ILSVRC-2014 localisation track with 25.3% top-5 error on
the test set.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import keras
import numpy as np

from keras_vgg import boxes, configs, inference, localisation, localisation_data
from keras_vgg.requires_tensorflow import tf

# The nets' output stride: five 2x2 max-pools.
OUTPUT_STRIDE = configs.MIN_INPUT_SIZE


@dataclasses.dataclass(frozen=True)
class LocalisationResult:
    """Errors as fractions; `top5_error` is None for the centre-crop protocol."""

    protocol: str
    test_scale: int
    top1_error: float
    top5_error: float | None
    images: int

    def summary(self) -> str:
        top5 = "" if self.top5_error is None else f", top-5 {100 * self.top5_error:.1f}%"
        return (f"localisation error ({self.protocol}, Q={self.test_scale}) on {self.images} "
                f"images: top-1 {100 * self.top1_error:.1f}%{top5}")


def _truth(label: int, corners: np.ndarray, count: int) -> list[tuple[int, np.ndarray]]:
    return [(int(label), corners[j]) for j in range(int(count))]


def centre_crop(model: keras.Model, source: str, *, test_scale: int,
                preprocessing: str = "caffe", split: str = "validation",
                batch_size: int = 32) -> tuple[LocalisationResult, list]:
    """Protocol 1 on `source` (with boxes). Returns the result and, per image,
    `(id, label, predicted corners, ground-truth corners)` in original pixels."""
    mode, _ = localisation.mode_of(model)
    crop = model.input_shape[1]
    dataset = localisation_data.centre_dataset(
        source, test_scale=test_scale, crop_size=crop, batch_size=batch_size, split=split,
        preprocessing=preprocessing, with_windows=True)
    predictions, truths, details = [], [], []
    for images, targets, windows, ground_truth, counts, ids in dataset:
        labels = targets[:, 0].numpy().astype(int)
        predicted = localisation.labelled_class_box(model(images, training=False),
                                                    targets[:, 0], mode)
        for i, label in enumerate(labels):
            corners = boxes.from_window(boxes.to_corners(np.asarray(predicted[i])),
                                        windows[i].numpy())
            truth = _truth(label, ground_truth[i].numpy(), counts[i])
            predictions.append([(int(label), corners)])
            truths.append(truth)
            details.append((ids[i].numpy().decode(), int(label), corners,
                            [box for _, box in truth]))
    error = boxes.localisation_error(predictions, truths, k=1)
    return LocalisationResult("centre crop, ground-truth class", test_scale, error, None,
                              len(truths)), details


def image_guesses(box_maps: Sequence[np.ndarray], modes: Sequence[str],
                  class_scores: np.ndarray, probabilities: np.ndarray, factor: np.ndarray,
                  crop: int, *, k: int = 5, overlap: float = boxes.IOU_THRESHOLD
                  ) -> list[tuple[int, np.ndarray]]:
    """Protocol 2's guesses for one image: `[(class, corners in original pixels)]`, best
    class first.

    Args:
      box_maps: each localisation net's dense output, `[h, w, 4]` (SCR) or `[h, w, 4 *
        classes]` (PCR), centre boxes relative to each position's window.
      modes: each net's "scr" or "pcr".
      class_scores: the classification net's `[h', w', classes]` softmax scores per position.
      probabilities: its `[classes]` image-level posteriors, which pick the top-k classes.
      factor: `[2]` (y, x) scale of the rescaled image over the original.
    """
    guesses = []
    for label in np.argsort(-probabilities)[:k]:
        corners, ratings = [], []
        for box_map, mode in zip(box_maps, modes, strict=True):
            height, width = box_map.shape[:2]
            corners.append(boxes.dense_corners(box_map[None], [[label]], factor, crop,
                                               OUTPUT_STRIDE, mode)[0, 0].numpy())
            # The class net's map may differ in size from this net's: nearest position.
            rows = np.minimum(np.arange(height), class_scores.shape[0] - 1)
            cols = np.minimum(np.arange(width), class_scores.shape[1] - 1)
            ratings.append(class_scores[rows][:, cols, label].reshape(-1))
        merged, _ = boxes.greedy_merge(np.concatenate(corners), np.concatenate(ratings),
                                       overlap=overlap)
        guesses.append((int(label), merged[0]))
    return guesses


def full(localisers: Sequence[keras.Model], classifier: keras.Model, source: str, *,
         test_scale: int, preprocessing: str = "caffe", split: str = "validation",
         k: int = 5) -> tuple[LocalisationResult, list]:
    """Protocol 2 on `source` (with boxes). Returns the result and, per image, `(id,
    label, guesses, ground-truth corners)`."""
    crop = classifier.input_shape[1]
    if any(net.input_shape[1] != crop for net in localisers):
        raise ValueError("the localisation nets' crops differ from the classifier's "
                         f"{crop}: {[net.input_shape[1] for net in localisers]}")
    box_nets = [inference.DenseClassifier(net, test_scales=(test_scale,), flip=False,
                                          preprocessing=preprocessing,
                                          head=localisation.BOX_LAYER) for net in localisers]
    modes = [localisation.mode_of(net)[0] for net in localisers]
    class_net = inference.DenseClassifier(classifier, test_scales=(test_scale,), flip=False,
                                          preprocessing=preprocessing)

    @tf.function(input_signature=[tf.TensorSpec([1, None, None, 3], tf.uint8)],
                 autograph=False)
    def dense_maps(image):  # one graph for whole images of any size
        x, factor = class_net.inputs(image, test_scale)  # one rescale for every net
        classes = class_net.apply(x, factor)
        return ([net.apply(x, factor)[inference.SCORE_MAP][0] for net in box_nets],
                tf.nn.softmax(classes[inference.SCORE_MAP][0]),
                classes[inference.PROBABILITIES][0], factor)

    predictions, truths, details = [], [], []
    for image, label, ground_truth, count, image_id in localisation_data.whole_images(
            source, split=split):
        box_maps, scores, probabilities, factor = dense_maps(image)
        guesses = image_guesses([np.asarray(m) for m in box_maps], modes, scores.numpy(),
                                probabilities.numpy(), factor.numpy(), crop, k=k)
        truth = _truth(int(label), ground_truth.numpy(), count)
        predictions.append(guesses)
        truths.append(truth)
        details.append((image_id.numpy().decode(), int(label), guesses,
                        [box for _, box in truth]))
    return LocalisationResult(
        "full image, dense, merged", test_scale,
        boxes.localisation_error(predictions, truths, k=1),
        boxes.localisation_error(predictions, truths, k=k), len(truths)), details


"""Very deep features for other data sets (Appendix B): image descriptors from a trained net,
computed as the paper does, for a linear classifier on top.

For each image and each scale Q: rescale so the shorter side is Q, apply the net densely
up to the chosen layer (`keras_vgg.inference.DenseClassifier`, cut at the layer), average
the feature map over space, and average with the mirrored image's. The scales' vectors are
averaged (or stacked, as the paper does for Caltech), and the result is L2-normalised.

The layer is fc2 by default, or fc1 or any conv/pool layer by name. The paper's reference (D and E
descriptors stacked, linear SVM): 89.7 mAP on VOC-2007, 92.7% mean class recall on Caltech-101.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np

from keras_vgg import configs, data, inference, sources
from keras_vgg.progress import bar as progress_bar
from keras_vgg.requires_tensorflow import tf

# Appendix B: the descriptor's scales Q are Sect. 3.2's multi-scale set, and its layer the
# penultimate (4096-D at full width).
PAPER_TEST_SCALES = configs.MULTI_SCALE_TEST_SCALES
PAPER_LAYER = configs.FC_LAYERS[1]
COMBINE_MODES = ("mean", "stack")


def descriptors(
    model: keras.Model,
    images: Sequence[np.ndarray] | str,
    *,
    split: str = "train",
    **options,
) -> np.ndarray:
    """Appendix B's descriptors of `images`: float32 `[n, D]` (`[n, D * len(test_scales)]`
    with `combine="stack"`), each L2-normalised.

    Args:
      model: a keras_vgg model built with its head (any config, width, crop).
      images: uint8 `[height, width, 3]` arrays of any sizes, or a data source spec
        (`keras_vgg.sources`; its images in source order).
      split: the split of a TFDS source.
      options: `Describer`'s: test_scales (the Q, pixels, at least the crop for fc
        layers), flip, layer ("fc2", "fc1", or a conv or pool layer's name), combine
        ("mean" over scales, or "stack"), preprocessing (the weights' mode).
    """
    describe = Describer(model, **options)
    if isinstance(images, str):
        return labelled_descriptors(describe, images, split=split)[0]
    result = [describe(image) for image in images]
    if not result:
        raise ValueError("no images to describe")
    return np.stack(result)


class Describer:
    """`describer(image) -> [D] float32`: one image's Appendix B descriptor (see
    `descriptors` for the options)."""

    def __init__(self, model: keras.Model, *, test_scales: Sequence[int] = PAPER_TEST_SCALES,
                 flip: bool = True, layer: str = PAPER_LAYER, combine: str = "mean",
                 preprocessing: str = "caffe"):
        if combine not in COMBINE_MODES:
            raise ValueError(f"combine must be one of {COMBINE_MODES}, got {combine!r}")
        classifier = inference.DenseClassifier(model, test_scales=test_scales, flip=flip,
                                               layer=layer, preprocessing=preprocessing)
        self.test_scales, self.flip, self.combine = classifier.test_scales, flip, combine
        self.preprocessing = preprocessing

        @tf.function(input_signature=[tf.TensorSpec([None, None, 3], tf.uint8)], autograph=False)
        def describe(image):
            per_scale = [classifier.outputs(image[None], q)[inference.MEAN][0]
                         for q in classifier.test_scales]
            joined = (tf.concat(per_scale, axis=0) if combine == "stack"
                      else tf.reduce_mean(tf.stack(per_scale), axis=0))
            return tf.math.l2_normalize(joined)

        self._describe = describe

    def __call__(self, image) -> np.ndarray:
        image = tf.convert_to_tensor(image)
        if image.shape.rank != 3 or image.shape[-1] != 3 or image.dtype != tf.uint8:
            raise ValueError(f"images must be uint8 [height, width, 3] arrays, got "
                             f"{image.dtype.name} {image.shape}")
        return self._describe(image).numpy()


def labelled_descriptors(describe: Describer, source: str, *, split: str = "train",
                         progress: bool = False) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The descriptors of a source's images (`[n, D]`), their labels (`[n]`, or `[n,
    classes]` for multi-label sources, see `keras_vgg.sources`) and ids, in source order;
    undecodable images are skipped and named (`keras_vgg.guard`). With `progress`, a
    progress bar."""
    bar = progress_bar(sources.open_source(source, split=split).num_examples,
                       enabled=progress)
    vectors, labels, ids = [], [], []
    for image, label, image_id in data.eval_dataset(source, view="original", split=split,
                                                    with_ids=True):
        vectors.append(describe(image[0]))
        labels.append(label.numpy())
        ids.append(image_id.numpy().decode())
        if bar:
            bar.add(1)
    if not vectors:
        raise ValueError(f"{source!r} has no images to describe")
    return np.stack(vectors), np.array(labels), ids

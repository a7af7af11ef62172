"""The one dense test-time path (Sect. 3.2): rescale an image so its shorter side is Q,
apply the weights' preprocessing, run the fully-convolutional net (`keras_vgg.dense`) and
average its map over space and, optionally, with the mirror image's.

Every task that looks at whole images runs through `DenseClassifier`: dense evaluation
(`keras_vgg.evaluation`, over several Q), the Appendix B descriptors (`keras_vgg.transfer`,
a cut at a named layer), the full localisation protocol (`keras_vgg.localisation_eval`,
the class and box maps), prediction and the exported SavedModel (`keras_vgg.serving`).

    classify = DenseClassifier(model, test_scales=(256, 384, 512), flip=True)
    probabilities = classify(images)          # [batch, classes], scales and flips averaged
    outputs = classify.outputs(images, 384)   # one Q: score map, mean, probabilities, factor
"""

from __future__ import annotations

from collections.abc import Sequence

import keras

from keras_vgg import configs, dense, image_ops, imagenet
from keras_vgg.requires_tensorflow import tf

# `outputs`' keys.
SCORE_MAP = dense.SCORE_MAP  # [b, H, W, C] the map of the unmirrored image
MEAN = "mean"  # [b, C] the map averaged over space, then over the flips
PROBABILITIES = dense.PROBABILITIES  # [b, C] the head's activation of the spatial mean,
#                                      averaged over the flips (not for a cut)
FACTOR = "factor"  # [2] (y, x) the rescaled image's size over the original's


def _cut_at(model: keras.Model, layer: str) -> keras.Model:
    """The fully-convolutional form of `model` up to `layer` (fc1, fc2 or a conv or pool
    layer): images of any size -> `[b, h, w, D]`."""
    names = [layer.name for layer in model.layers[1:] if layer.name != configs.FLATTEN_LAYER
             and not layer.name.endswith("_dropout")]
    if layer not in names:
        raise ValueError(f"no layer {layer!r} in {model.name!r}; the net can be cut at "
                         f"{names}")
    name = f"{model.name}_{layer}_features"
    if layer in configs.HEAD_LAYERS:
        net = dense.fully_convolutional(model)
        return keras.Model(net.inputs[0], net.get_layer(dense.conv_name(layer)).output, name=name)
    inputs = x = keras.Input((None, None, model.input_shape[-1]))
    for trunk_layer in model.layers[1:]:
        x = trunk_layer(x)
        if trunk_layer.name == layer:
            break
    return keras.Model(inputs, x, name=name)


class DenseClassifier:
    """A net applied densely to whole images at one or more scales Q.

    Args:
      model: a `keras_vgg` model built with its head (any config, width, class count,
        training crop; a localisation net with `head="boxes"`), channels last.
      test_scales: the scales Q (px), each at least the training crop when the map comes
        from a fully-connected layer.
      preprocessing: the weights' preprocessing (`imagenet.PREPROCESSING_MODES`).
      flip: also run the mirror image and average (twice the compute).
      head: the model's last layer: "predictions", or "boxes" for a localisation net.
      layer: cut the net at this layer instead (fc1, fc2, or a conv or pool layer's name):
        the map is that layer's activations and there are no probabilities.

    Raises:
      ValueError: no scale, a scale below the crop, an unknown layer or preprocessing.
    """

    def __init__(self, model: keras.Model, *, test_scales: Sequence[int] = (
                 image_ops.TEST_SCALE,), preprocessing: str = "caffe", flip: bool = True,
                 head: str = configs.PREDICTIONS_LAYER, layer: str | None = None):
        if not test_scales:
            raise ValueError("test_scales is empty: give at least one scale Q")
        if preprocessing not in imagenet.PREPROCESSING_MODES:
            raise ValueError(f"unknown preprocessing {preprocessing!r}; expected one of "
                             f"{imagenet.PREPROCESSING_MODES}")
        crop = model.input_shape[1]
        if (layer is None or layer in configs.HEAD_LAYERS) and min(test_scales) < crop:
            raise ValueError(f"test scales {list(test_scales)} must be at least the crop "
                             f"{crop}: the fully-connected layers need a crop-sized window")
        self.net = (dense.fully_convolutional(model, head=head) if layer is None
                    else _cut_at(model, layer))
        self.test_scales = tuple(int(q) for q in test_scales)
        self.preprocessing, self.flip, self.layer = preprocessing, flip, layer
        self._graphs = {}  # `__call__`'s, by the images' dtype

    def inputs(self, images: tf.Tensor, test_scale: int) -> tuple[tf.Tensor, tf.Tensor]:
        """`images` (`[b, h, w, 3]` pixels 0-255, uint8 or float, one size) rescaled to Q =
        `test_scale` and preprocessed, `[b, H, W, 3]` float32, and their `FACTOR`."""
        rescaled = image_ops.rescale_shorter_side(images, test_scale)
        factor = (tf.cast(tf.shape(rescaled)[1:3], tf.float32)
                  / tf.cast(tf.shape(images)[1:3], tf.float32))
        return imagenet.preprocess_input(rescaled, mode=self.preprocessing), factor

    def apply(self, x: tf.Tensor, factor: tf.Tensor) -> dict[str, tf.Tensor]:
        """The net on `inputs`' result (also another `DenseClassifier`'s of the same
        preprocessing, so that two nets share one rescale): a dict of `SCORE_MAP`, `MEAN`,
        `FACTOR` and, for a head, `PROBABILITIES` (see the module's constants)."""
        if self.flip:
            x = tf.concat([x, tf.reverse(x, [2])], axis=0)
        result = self.net(x, training=False)
        maps = result if self.layer is not None else result[SCORE_MAP]
        averaged = {MEAN: tf.reduce_mean(tf.cast(maps, tf.float32), axis=[1, 2])}
        if self.layer is None:
            averaged[PROBABILITIES] = result[PROBABILITIES]
        if self.flip:  # the unmirrored map; the means and posteriors of both
            maps = tf.split(maps, 2)[0]
            averaged = {key: tf.add_n(tf.split(value, 2)) / 2 for key, value in averaged.items()}
        return {SCORE_MAP: maps, FACTOR: factor, **averaged}

    def outputs(self, images: tf.Tensor, test_scale: int) -> dict[str, tf.Tensor]:
        """The net on `images` (`[b, h, w, 3]` pixels, one size) at Q = `test_scale`:
        `apply(*inputs(images, test_scale))`."""
        return self.apply(*self.inputs(images, test_scale))

    def __call__(self, images: tf.Tensor) -> tf.Tensor:
        """`[b, classes]` probabilities (`[b, D]` means for a cut) of `images` (`[b, h, w,
        3]` pixels, one size), averaged over the test scales. One graph per pixel type
        serves every size (whole images differ in size)."""
        images = tf.convert_to_tensor(images)
        if images.dtype not in self._graphs:
            self._graphs[images.dtype] = tf.function(self._averaged, autograph=False
                                                     ).get_concrete_function(
                tf.TensorSpec([None, None, None, images.shape[-1]], images.dtype))
        return self._graphs[images.dtype](images)

    def _averaged(self, images: tf.Tensor) -> tf.Tensor:
        key = MEAN if self.layer is not None else PROBABILITIES
        return tf.add_n([self.outputs(images, q)[key] for q in self.test_scales]) / len(
            self.test_scales)

"""Dense evaluation (Sect. 3.2): the fully-connected head re-read as convolutions.

fc1 becomes a conv whose kernel is the training crop's last feature map (7x7 for 224 px)
with `valid` padding, fc2 and predictions become 1x1 convs; the net then takes an image of
any size and returns a class score map, which is averaged over space before the softmax.

At the training crop size the result equals the original model (to float32 rounding). Images
smaller than the training crop must be upscaled to it first; the evaluation pipeline rescales
every image to Q >= crop. The converted net follows the model's image layout.
"""

from __future__ import annotations

import keras

from keras_vgg.configs import FC_LAYERS, FLATTEN_LAYER, PREDICTIONS_LAYER

SCORE_MAP = "score_map"
PROBABILITIES = "probabilities"


def conv_name(dense_layer: str) -> str:
    """The name of a Dense layer's convolution in the fully-convolutional form."""
    return f"{dense_layer}_conv"


def _trunk_layers(model: keras.Model, head: str) -> list[keras.layers.Layer]:
    names = [layer.name for layer in model.layers]
    if FLATTEN_LAYER not in names or head not in names:
        raise ValueError(
            f"model {model.name!r} has no flatten/fc/{head} head (built with "
            "include_top=False?): there is nothing to make fully convolutional"
        )
    return model.layers[1 : names.index(FLATTEN_LAYER)]


def _as_conv(dense: keras.layers.Dense, kernel_size: tuple[int, int], name: str,
             activation, data_format: str) -> keras.layers.Conv2D:
    """A Conv2D computing `dense` at every position; kernel `[kh, kw, c_in, units]`.

    The kernel starts at zero (fc1's random draw would take a second at full size) and is
    copied from `dense`'s on the backend's device, not through NumPy."""
    conv = keras.layers.Conv2D(
        dense.units, kernel_size, padding="valid", activation=activation, name=name,
        dtype=dense.dtype_policy, data_format=data_format, kernel_initializer="zeros",
    )
    channels_in = dense.kernel.shape[0] // (kernel_size[0] * kernel_size[1])
    conv.build((None, channels_in, None, None) if data_format == "channels_first"
               else (None, None, None, channels_in))
    # Keras' Flatten yields (h, w, c) rows under either layout, the kernel's order.
    conv.kernel.assign(keras.ops.reshape(dense.kernel, (*kernel_size, channels_in,
                                                        dense.units)))
    conv.bias.assign(dense.bias)
    return conv


def fully_convolutional(model: keras.Model, *, name: str | None = None,
                        head: str = PREDICTIONS_LAYER) -> keras.Model:
    """The test-time form of a VGG model built with its head (any config, width, class
    count, batch norm, training crop size), sharing the conv layers' weights.

    Args:
      model: a `keras_vgg` model with `include_top=True`.
      head: its last fully-connected layer: "predictions", or "boxes" for a localisation
        net (`keras_vgg.localisation`), whose score map is then a map of boxes.

    Returns:
      A model taking `[batch, height, width, 3]` (height and width at least the training
      crop; smaller images must be upscaled first) and returning a dict (under
      `channels_first` the image and the score map have their channels second):
      `"score_map"`: `[batch, H/32 - crop/32 + 1, W/32 - crop/32 + 1, classes]` class scores
      (pre-softmax; for a 224-trained net the side is floor(Q/32) - 6), and
      `"probabilities"`: `[batch, classes]`, the softmax (the model's own classifier
      activation) of the spatially averaged scores. At the training crop size it equals
      `model`'s output.
    """
    trunk = _trunk_layers(model, head)
    flatten = model.get_layer(FLATTEN_LAYER)
    data_format = flatten.data_format
    first = data_format == "channels_first"
    feature_map = flatten.input.shape
    fc_kernel = tuple(feature_map[2:4] if first else feature_map[1:3])
    if None in fc_kernel:
        raise ValueError(f"model {model.name!r} has no static feature map before flatten")
    predictions = model.get_layer(head)
    channels = model.input_shape[1] if first else model.input_shape[-1]
    inputs = keras.Input((channels, None, None) if first else (None, None, channels),
                         name="image")
    x = inputs
    for layer in trunk:
        x = layer(x)
    for name, kernel_size in zip(FC_LAYERS, (fc_kernel, (1, 1)), strict=True):
        x = _as_conv(model.get_layer(name), kernel_size, conv_name(name), "relu", data_format)(x)
    scores = _as_conv(predictions, (1, 1), conv_name(head), None, data_format)(x)
    averaged = keras.layers.GlobalAveragePooling2D(
        data_format=data_format, name="spatial_average", dtype="float32")(scores)
    probabilities = keras.layers.Activation(
        predictions.activation, name=PROBABILITIES, dtype="float32")(averaged)
    return keras.Model(
        inputs,
        {SCORE_MAP: scores, PROBABILITIES: probabilities},
        name=name or f"{model.name}_dense",
    )

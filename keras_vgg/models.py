"""One builder for every VGG network, reading `keras_vgg.configs`.

`VGG16` and `VGG19` keep the `keras.applications` contract (arguments, checks, the same
layers with the same names in the same order, `channels_first` and `channels_last`), so
official Keras weight files load unchanged; `VGG11`, `VGG13` and `vgg(config)` extend it to
every network of the paper. The named builders leave out dropout by default, as
keras.applications does; `vgg(config)` and the training recipe keep the paper's 0.5.

A test compares the layer lists with keras.applications' for VGG16 and VGG19, with and
without the top, for each pooling mode and both image layouts. Batch norm uses torchvision's
epsilon (1e-5) and momentum, so `vgg*_bn` checkpoints compute the same function. Biases start
at zero; `kernel_initializer="gaussian"` is the paper's N(0, 0.01^2). Parameter counts equal
the paper's (A 132,863,336 ... E 143,667,240), and `get_config()`
round-trips, so models save and load as `.keras` with `safe_mode=True`.

The model code is Keras 3 only: it builds and runs without TensorFlow on JAX and PyTorch and
computes the same numbers there. `channels_first` builds `[batch, 3, height, width]` models,
as keras.applications does; TensorFlow's CPU kernels cannot run channels-first convolutions
(keras.applications' own tests skip them there); on JAX both layouts give the same numbers.
"""

from __future__ import annotations

import os
from typing import Any

import keras

from keras_vgg import configs, kerashub, pretrained
from keras_vgg import weights as weight_files
from keras_vgg.layers import LocalResponseNormalization

# Sect. 3.1: "weights sampled from a normal distribution with zero mean and 10^-2 variance",
# read as Caffe's and AlexNet's standard deviation 0.01. Read literally (std 0.1), every
# layer amplifies the signal of mean-subtracted 0-255 inputs: config A's cross-entropy
# starts near 3e8 and training diverges (BENCHMARKS.md, Initialisation).
PAPER_INIT_STDDEV = 0.01
# Sect. 3.1: dropout ratio on the first two fully-connected layers.
PAPER_DROPOUT = 0.5
# torchvision's BatchNorm2d defaults (eps 1e-5, momentum 0.1 == Keras momentum 0.9), so that
# converted `vgg*_bn` checkpoints compute the same function.
BN_EPSILON = 1e-5
BN_MOMENTUM = 0.9

POOLING_MODES = (None, "avg", "max")
# The widest net built: 16 times the paper's widths already has 256 times its weights.
MAX_WIDTH_MULTIPLIER = 16.0


def kernel_initializer_from(identifier: Any) -> keras.initializers.Initializer:
    """A fresh initializer: "gaussian" (the paper's N(0, 0.01^2)), "glorot", or any Keras one."""
    if identifier == "gaussian":
        return keras.initializers.RandomNormal(mean=0.0, stddev=PAPER_INIT_STDDEV)
    if identifier == "glorot":
        return keras.initializers.GlorotUniform()
    if isinstance(identifier, keras.initializers.Initializer):
        return identifier
    try:
        return keras.initializers.get(identifier)
    except ValueError as error:
        raise ValueError(
            f"unknown kernel_initializer {identifier!r}: expected 'gaussian' (the paper's "
            "N(0, 0.01^2)), 'glorot', or a Keras initializer"
        ) from error


def _check_arguments(
    config: configs.VGGConfig,
    *,
    include_top: bool,
    weights: str | os.PathLike | None,
    pooling: str | None,
    classes: int,
    classifier_activation: Any,
    dropout: float,
    width_multiplier: float,
) -> None:
    """The keras.applications checks, plus ours; each raises a ValueError naming the value."""
    if not (weights in (None, "imagenet") or os.path.isfile(weights)
            or kerashub.is_preset(weights)):
        raise ValueError(
            "The `weights` argument should be either `None` (random initialization), "
            "'imagenet' (pre-training on ImageNet), or the path to the weights file to be "
            f"loaded (or a KerasHub VGG preset directory). Received: weights={weights!r} "
            "(no such file)"
        )
    if weights == "imagenet":
        weight_files.check_imagenet_available(config, width_multiplier=width_multiplier)
        if include_top and classes != 1000:
            raise ValueError(
                "If using `weights='imagenet'` with `include_top=True`, `classes` should be "
                f"1000. Received classes={classes}"
            )
    if not isinstance(classes, int) or classes < 1:
        raise ValueError(f"`classes` must be a positive integer. Received classes={classes!r}")
    if pooling not in POOLING_MODES:
        raise ValueError(
            f"`pooling` must be one of {POOLING_MODES}. Received pooling={pooling!r}"
        )
    if include_top and weights is not None:
        activation = keras.activations.get(classifier_activation)
        if activation not in (keras.activations.get("softmax"), keras.activations.get(None)):
            raise ValueError(
                "Only `None` and `softmax` activations are allowed for the "
                "`classifier_activation` argument when using pretrained weights, with "
                f"`include_top=True`; Received: classifier_activation={classifier_activation!r}"
            )
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"`dropout` must be in [0, 1). Received dropout={dropout!r}")
    if not 0 < width_multiplier <= MAX_WIDTH_MULTIPLIER:
        raise ValueError(
            f"`width_multiplier` must be positive and at most {MAX_WIDTH_MULTIPLIER}. Received "
            f"width_multiplier={width_multiplier!r}"
        )


def channels_first() -> bool:
    """Whether Keras builds `[batch, channels, height, width]` models
    (`keras.config.image_data_format()`)."""
    return keras.config.image_data_format() == "channels_first"


def _input_shape(
    input_shape: tuple | None,
    *,
    input_tensor: Any,
    include_top: bool,
    weights: Any,
) -> tuple:
    """Validated `(height, width, channels)`, or `(channels, height, width)` under
    `channels_first`; the keras.applications rules."""
    if input_shape is None and input_tensor is not None:
        input_shape = tuple(input_tensor.shape[1:])
    layout = "(channels, height, width)" if channels_first() else "(height, width, channels)"

    def ordered(height, width, channels):
        return (channels, height, width) if channels_first() else (height, width, channels)

    default_shape = ordered(configs.DEFAULT_INPUT_SIZE, configs.DEFAULT_INPUT_SIZE, 3)
    if input_shape is None:
        return default_shape if include_top else ordered(None, None, 3)
    input_shape = tuple(input_shape)
    if len(input_shape) != 3:
        raise ValueError(
            f"`input_shape` must be a tuple of three integers {layout}. "
            f"Received: input_shape={input_shape}"
        )
    channels = input_shape[0] if channels_first() else input_shape[-1]
    sides = input_shape[1:] if channels_first() else input_shape[:2]
    if weights == "imagenet":
        if include_top and input_shape != default_shape:
            raise ValueError(
                "When setting `include_top=True` and loading `imagenet` weights, "
                f"`input_shape` should be {default_shape}. Received: input_shape={input_shape}"
            )
        if channels != 3:
            raise ValueError(f"The input must have 3 channels; Received input_shape={input_shape}")
    for side in sides:
        if side is not None and side < configs.MIN_INPUT_SIZE:
            raise ValueError(
                f"Input size must be at least {configs.MIN_INPUT_SIZE}x{configs.MIN_INPUT_SIZE} "
                f"(five 2x2 max-pools); Received: input_shape={input_shape}"
            )
    if include_top and None in input_shape:
        raise ValueError(
            "If `include_top` is True, you should specify a static `input_shape` (the Flatten "
            f"before fc1 needs it). Received: input_shape={input_shape}"
        )
    return input_shape


def _input_layer(input_tensor: Any, input_shape: tuple):
    if input_tensor is None:
        return keras.Input(shape=input_shape)
    if not keras.backend.is_keras_tensor(input_tensor):
        raise ValueError(
            "`input_tensor` must be a Keras tensor (e.g. the output of `keras.Input`). "
            f"Received: {type(input_tensor).__name__}"
        )
    return input_tensor


def _conv_stages(x, config: configs.VGGConfig, *, width_multiplier: float, kernel_options):
    """Table 1's convolutional part: `[b, H, W, 3]` -> `[b, H // 32, W // 32, widths[-1]]`
    (channels first: `[b, 3, H, W]` -> `[b, widths[-1], H // 32, W // 32]`)."""
    for block, (kernel_sizes, width) in enumerate(
        zip(config.kernel_sizes, config.widths, strict=True), start=1
    ):
        filters = configs.scaled_width(width, width_multiplier)
        for index, kernel_size in enumerate(kernel_sizes, start=1):
            name = configs.conv_layer(block, index)
            x = keras.layers.Conv2D(
                filters,
                kernel_size,
                padding="same",
                activation=None if config.batch_norm else "relu",
                name=name,
                **kernel_options(),
            )(x)
            if config.batch_norm:
                x = keras.layers.BatchNormalization(
                    axis=1 if channels_first() else -1, epsilon=BN_EPSILON,
                    momentum=BN_MOMENTUM, name=f"block{block}_bn{index}",
                )(x)
                x = keras.layers.ReLU(name=f"block{block}_relu{index}")(x)
            if config.lrn and block == 1 and index == 1:
                x = LocalResponseNormalization(name="block1_lrn")(x)
        x = keras.layers.MaxPooling2D((2, 2), strides=(2, 2), name=configs.pool_layer(block))(x)
    return x


def _classifier(
    x,
    config: configs.VGGConfig,
    *,
    classes: int,
    classifier_activation: Any,
    dropout: float,
    width_multiplier: float,
    kernel_options,
):
    """Table 1's head: flatten -> (FC -> ReLU -> dropout) x 2 -> FC -> activation. Keras'
    Flatten orders a channels_first map as channels_last, so fc1's rows are `(h, w, c)`
    under either layout and weight files serve both."""
    x = keras.layers.Flatten(name=configs.FLATTEN_LAYER)(x)
    for name, units in zip(configs.FC_LAYERS, config.fc_units, strict=True):
        x = keras.layers.Dense(
            configs.scaled_width(units, width_multiplier),
            activation="relu",
            name=name,
            **kernel_options(),
        )(x)
        if dropout:
            x = keras.layers.Dropout(dropout, name=f"{name}_dropout")(x)
    mixed = keras.config.dtype_policy().compute_dtype != keras.config.dtype_policy().variable_dtype
    return keras.layers.Dense(
        classes,
        activation=classifier_activation,
        name=configs.PREDICTIONS_LAYER,
        # Under mixed precision the class scores stay float32 (softmax, loss and top-k).
        dtype="float32" if mixed else None,
        **kernel_options(),
    )(x)


def vgg(
    config: str | configs.VGGConfig,
    *,
    include_top: bool = True,
    weights: str | os.PathLike | None = None,
    input_tensor: Any = None,
    input_shape: tuple | None = None,
    pooling: str | None = None,
    classes: int = 1000,
    classifier_activation: Any = "softmax",
    name: str | None = None,
    dropout: float = PAPER_DROPOUT,
    kernel_initializer: Any = "glorot_uniform",
    kernel_regularizer: Any = None,
    batch_norm: bool = False,
    width_multiplier: float = 1.0,
) -> keras.Model:
    """Builds any VGG network of the paper.

    Args:
      config: paper letter ("A", "A-LRN", "B", "C", "D", "E"), variant ("D-BN", "B-5x5"),
        model name ("vgg16", "vgg19_bn") or a `VGGConfig`.
      include_top: keep flatten + fc1 + fc2 + predictions.
      weights: None (random), "imagenet" (official Keras files, D and E), the path to a
        Keras `.weights.h5` / `.h5` / `.keras` file or a torchvision/timm `.pth` /
        `.safetensors` checkpoint, or a KerasHub VGG preset directory (`keras_vgg.kerashub`).
      input_tensor: optional Keras tensor to build the model on.
      input_shape: `(height, width, channels)` (`(channels, height, width)` under
        `channels_first`); default `(224, 224, 3)` with the top, `(None, None, 3)` without.
      pooling: without the top: None (`[b, H/32, W/32, C]`), "avg" or "max" (`[b, C]`).
      classes: output classes of `predictions`.
      classifier_activation: activation of `predictions` (None for logits).
      name: model name; default the config's (e.g. "vgg16").
      dropout: rate after fc1 and fc2 (the paper's 0.5; 0 removes the layers).
      kernel_initializer: "gaussian" (N(0, 0.01^2), the paper), "glorot"/"glorot_uniform"
        (Keras' default) or any Keras initializer. Biases start at zero.
      kernel_regularizer: a Keras regularizer for every conv and dense kernel (training
        uses L2(2.5e-4), the paper's Caffe weight decay 5e-4).
      batch_norm: conv -> BatchNorm -> ReLU (torchvision's `vgg*_bn`).
      width_multiplier: scales conv filters and fc1/fc2 units (1.0 is the paper).

    Returns:
      A functional `keras.Model`, input `[batch, height, width, 3]` float (`[batch, 3,
      height, width]` under `channels_first`; preprocessed with
      `keras_vgg.preprocess_input`), output `[batch, classes]` with the top.
    """
    config = configs.get(config)
    if batch_norm:
        config = configs.with_batch_norm(config)
    _check_arguments(
        config,
        include_top=include_top,
        weights=weights,
        pooling=pooling,
        classes=classes,
        classifier_activation=classifier_activation,
        dropout=dropout,
        width_multiplier=width_multiplier,
    )
    shape = _input_shape(
        input_shape, input_tensor=input_tensor, include_top=include_top, weights=weights
    )
    # The official file is fetched (or found missing) before a large model is built.
    source = (weight_files.fetch_imagenet_weights(config, include_top=include_top)
              if weights == "imagenet" else weights)
    inputs = _input_layer(input_tensor, shape)

    # A source replaces every weight (all or nothing), so its kernels start at zero rather
    # than drawing 138M random numbers, a second at full size. Each layer's initializer is
    # still made in its turn (Keras seeds it from Python's random module, as it does each
    # Dropout), and is put back in the layer's config once the weights are loaded.
    initializers = []

    def kernel_options():
        initializers.append(kernel_initializer_from(kernel_initializer))
        return {
            "kernel_initializer": initializers[-1] if source is None else "zeros",
            "kernel_regularizer": kernel_regularizer,
        }

    x = _conv_stages(
        inputs, config, width_multiplier=width_multiplier, kernel_options=kernel_options
    )
    if include_top:
        x = _classifier(
            x,
            config,
            classes=classes,
            classifier_activation=classifier_activation,
            dropout=dropout,
            width_multiplier=width_multiplier,
            kernel_options=kernel_options,
        )
    elif pooling == "avg":  # unnamed, as in keras.applications
        x = keras.layers.GlobalAveragePooling2D()(x)
    elif pooling == "max":
        x = keras.layers.GlobalMaxPooling2D()(x)
    source_inputs = inputs if input_tensor is None else keras.utils.get_source_inputs(inputs)
    model = keras.Model(source_inputs, x, name=name or config.model_name)

    if source is not None:
        pretrained.load(model, source, config=config)
        kernels = [layer for layer in model.layers
                   if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense))]
        for layer, initializer in zip(kernels, initializers, strict=True):
            layer.kernel_initializer = initializer
    return model


def _named_builder(letter: str, default_weights: str | None):
    """A keras.applications-style builder for one column of Table 1."""
    config = configs.TABLE_1[letter]

    def builder(
        include_top: bool = True,
        weights: str | os.PathLike | None = default_weights,
        input_tensor: Any = None,
        input_shape: tuple | None = None,
        pooling: str | None = None,
        classes: int = 1000,
        classifier_activation: Any = "softmax",
        name: str = config.model_name,
        dropout: float = 0.0,
        **kwargs: Any,
    ) -> keras.Model:
        return vgg(
            config,
            include_top=include_top,
            weights=weights,
            input_tensor=input_tensor,
            input_shape=input_shape,
            pooling=pooling,
            classes=classes,
            classifier_activation=classifier_activation,
            name=name,
            dropout=dropout,
            **kwargs,
        )

    builder.__name__ = builder.__qualname__ = f"VGG{config.weight_layers}"
    builder.__doc__ = (
        f"VGG{config.weight_layers} (config {letter} of Table 1): `keras.applications.VGG16`'s "
        f"arguments and layers, plus `vgg()`'s keyword arguments (kernel_initializer, "
        f"batch_norm, width_multiplier, and dropout: 0 by default, as keras.applications; "
        f"the paper's is 0.5). Default weights: {default_weights!r}."
    )
    return builder


# keras.applications defaults to ImageNet weights where Keras publishes them (D and E).
VGG11 = _named_builder("A", default_weights=None)
VGG13 = _named_builder("B", default_weights=None)
VGG16 = _named_builder("D", default_weights="imagenet")
VGG19 = _named_builder("E", default_weights="imagenet")

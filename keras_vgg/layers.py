"""Layers the paper needs that Keras does not ship.

`LocalResponseNormalization` is AlexNet's LRN, which configuration A-LRN uses. It is written in
`keras.ops`, so it runs on every backend, and gives, to float32 round-off, what
`torch.nn.LocalResponseNorm(size, alpha, beta, k)` and `tf.nn.local_response_normalization(
depth_radius=size // 2, bias=k, alpha=alpha / size, beta=beta)` give.
"""

from __future__ import annotations

import keras

# Sect. 2.3 / AlexNet (Krizhevsky et al., 2012): the LRN of config A-LRN.
LRN_SIZE = 5
LRN_ALPHA = 1e-4
LRN_BETA = 0.75
LRN_K = 2.0


@keras.saving.register_keras_serializable(package="keras_vgg")
class LocalResponseNormalization(keras.layers.Layer):
    """AlexNet's local response normalisation across channels.

    b[c] = a[c] / (k + alpha / size * sum_{c' in window(c)} a[c']^2) ** beta, the window
    being `size` neighbouring channels centred on c. Alpha is divided by the window size,
    as in Caffe (which the paper's authors used) and `torch.nn.LocalResponseNorm`.

    Keras has no such layer (it dropped LRN with Keras 2), hence this one, written in
    `keras.ops` for every backend (the module's docstring gives its torch and `tf.nn`
    equivalents). Input and output: `[batch, height, width, channels]`,
    or `[batch, channels, height, width]` with `data_format="channels_first"` (default
    `keras.config.image_data_format()`), float.
    """

    def __init__(
        self,
        size: int = LRN_SIZE,
        alpha: float = LRN_ALPHA,
        beta: float = LRN_BETA,
        k: float = LRN_K,
        data_format: str | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.data_format = data_format or keras.config.image_data_format()
        if self.data_format not in ("channels_first", "channels_last"):
            raise ValueError("data_format must be 'channels_first' or 'channels_last', got "
                             f"{data_format!r}")
        if size < 1 or size % 2 == 0:
            raise ValueError(f"LRN size must be a positive odd number, got {size}")
        self.size = size
        self.alpha = alpha
        self.beta = beta
        self.k = k

    def call(self, inputs):
        channel_axis = 1 if self.data_format == "channels_first" else -1
        squares = keras.ops.moveaxis(keras.ops.square(inputs), channel_axis, -1)
        channels = squares.shape[-1]
        radius = self.size // 2
        padded = keras.ops.pad(squares, [(0, 0)] * (len(squares.shape) - 1) + [(radius, radius)])
        window_sums = sum(padded[..., offset : offset + channels] for offset in range(self.size))
        scale = (self.k + self.alpha / self.size * window_sums) ** self.beta
        return inputs / keras.ops.moveaxis(scale, -1, channel_axis)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "size": self.size,
            "alpha": self.alpha,
            "beta": self.beta,
            "k": self.k,
            "data_format": self.data_format,
        }

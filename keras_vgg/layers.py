"""Layers the paper needs that Keras does not ship."""

from __future__ import annotations

import keras
import tensorflow as tf

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

    Keras has no such layer (it dropped LRN with Keras 2), hence this one. Input and output:
    `[batch, height, width, channels]`, float.
    """

    def __init__(
        self,
        size: int = LRN_SIZE,
        alpha: float = LRN_ALPHA,
        beta: float = LRN_BETA,
        k: float = LRN_K,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if size < 1 or size % 2 == 0:
            raise ValueError(f"LRN size must be a positive odd number, got {size}")
        self.size = size
        self.alpha = alpha
        self.beta = beta
        self.k = k

    def call(self, inputs):
        # TF's kernel computes bias + alpha * sum; Caffe's alpha is per channel in the window.
        return tf.nn.local_response_normalization(
            inputs,
            depth_radius=self.size // 2,
            bias=self.k,
            alpha=self.alpha / self.size,
            beta=self.beta,
        )

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "size": self.size,
            "alpha": self.alpha,
            "beta": self.beta,
            "k": self.k,
        }

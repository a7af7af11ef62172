"""The benchmarks' test images: real photographs (the ones scikit-image ships),
re-encoded at ImageNet's typical size."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "retina", "hubble_deep_field",
          "immunohistochemistry", "camera")


def imagenet_like_jpegs() -> list[bytes]:
    """The photographs, resized to 500x375 (landscape) or 375x500 (portrait), as JPEGs."""
    import skimage.data

    encoded = []
    for name in PHOTOS:
        photo = getattr(skimage.data, name)()
        if photo.ndim == 2:
            photo = np.stack([photo] * 3, axis=-1)
        photo = photo[..., :3]
        size = (375, 500) if photo.shape[1] >= photo.shape[0] else (500, 375)
        resized = tf.cast(tf.image.resize(photo, size, antialias=True), tf.uint8)
        encoded.append(tf.io.encode_jpeg(resized, quality=90).numpy())
    return encoded

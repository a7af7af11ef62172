"""keras-vgg: every network of Simonyan & Zisserman (ICLR 2015) in Keras.

    import keras_vgg
    model = keras_vgg.VGG16(weights="imagenet")          # keras.applications.VGG16, same layers
    model = keras_vgg.vgg("A-LRN", weights=None)         # any column of Table 1
"""

import os

# TensorFlow's C++ start-up lines (CPU features, oneDNN notices) are noise to our users and
# in logs; this must be set before TensorFlow loads, and a value the user set wins. Keras
# loads TensorFlow here, where the lines the level does not reach are held back too.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from keras_vgg.native_log import start_up_lines_hidden  # noqa: E402

with start_up_lines_hidden():
    from keras_vgg.configs import CONFIGS, TABLE_1, VGGConfig
    from keras_vgg.dense import fully_convolutional
    from keras_vgg.imagenet import class_index, decode_predictions, preprocess_input
    from keras_vgg.layers import LocalResponseNormalization
    from keras_vgg.models import VGG11, VGG13, VGG16, VGG19, vgg
    from keras_vgg.weights import load_weights

__version__ = "0.1.0"

__all__ = [
    "CONFIGS",
    "LocalResponseNormalization",
    "TABLE_1",
    "VGG11",
    "VGG13",
    "VGG16",
    "VGG19",
    "VGGConfig",
    "class_index",
    "decode_predictions",
    "fully_convolutional",
    "load_weights",
    "preprocess_input",
    "vgg",
]

"""Trains a VGG network the paper's way, or fine-tunes one onto your classes.

The same as `keras-vgg-train`, for a checkout without installing the package; the flags and
examples are in `keras_vgg/cli/train.py` (`python recipes/imagenet_train.py --helpfull`).
"""

import os
import sys

# A checkout run as `python recipes/imagenet_train.py`: the package beside this folder.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from keras_vgg.cli import train  # noqa: E402

if __name__ == "__main__":
    train.run()

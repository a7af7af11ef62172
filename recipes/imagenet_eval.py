"""Evaluates trained nets with the paper's test protocols, and fuses several.

The same as `keras-vgg-eval`, for a checkout without installing the package; the flags and
examples are in `keras_vgg/cli/evaluate.py` (`python recipes/imagenet_eval.py --helpfull`).
"""

import os
import sys

# A checkout run as `python recipes/imagenet_eval.py`: the package beside this folder.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from keras_vgg.cli import evaluate  # noqa: E402

if __name__ == "__main__":
    evaluate.run()

"""The best classes of image files, from a run, an export or weights.

The same as `keras-vgg-predict`, for a checkout without installing the package; the flags and
examples are in `keras_vgg/cli/predict.py` (`python recipes/predict.py --helpfull`).
"""

import os
import sys

# A checkout run as `python recipes/predict.py`: the package beside this folder.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from keras_vgg.cli import predict  # noqa: E402

if __name__ == "__main__":
    predict.run()

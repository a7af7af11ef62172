"""Appendix B: a linear SVM on a trained net's descriptors of another data set.

The same as `keras-vgg-transfer`, for a checkout without installing the package; the flags and
examples are in `keras_vgg/cli/transfer.py` (`python recipes/transfer.py --helpfull`).
"""

import os
import sys

# A checkout run as `python recipes/transfer.py`: the package beside this folder.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from keras_vgg.cli import transfer  # noqa: E402

if __name__ == "__main__":
    transfer.run()

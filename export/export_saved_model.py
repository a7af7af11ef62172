"""Exports a trained net as a variable-size SavedModel for TF-Serving.

The same as `keras-vgg-export`, for a checkout without installing the package; the flags and
examples are in `keras_vgg/cli/export.py` (`python export/export_saved_model.py --helpfull`).
"""

import os
import sys

# A checkout run as `python export/export_saved_model.py`: the package beside this folder.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from keras_vgg.cli import export  # noqa: E402

if __name__ == "__main__":
    export.run()

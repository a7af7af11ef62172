"""Measured comparisons (`make bench`); `python -m benchmarks.<name>` imports this first."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before any benchmark imports TensorFlow

"""Measured comparisons (`make bench`); `python -m benchmarks.<name>` imports this first."""

import os

# As keras_vgg does for its users; here, because a benchmark may import TensorFlow (or
# choose Keras' backend) before it imports keras_vgg.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

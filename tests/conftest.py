import os
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

# Narrow networks keep the suite fast: 1/16 of the paper's widths (4..32 filters, 256 units).
NARROW = 1 / 16


@pytest.fixture(autouse=True)
def _fresh_keras_session():
    keras.utils.set_random_seed(0)
    yield
    keras.backend.clear_session()


@pytest.fixture
def images():
    """`images(n, size)`: a float32 batch `[n, size, size, 3]` in [0, 255]."""

    def make(count: int = 2, size: int = 32, seed: int = 0) -> np.ndarray:
        rng = np.random.default_rng(seed)
        return rng.uniform(0, 255, (count, size, size, 3)).astype("float32")

    return make


def run_python(script: str) -> subprocess.CompletedProcess:
    """Runs `script` in a fresh Python (e.g. to set up logical devices before TF starts)."""
    return subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
        check=False, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )

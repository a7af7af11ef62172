#!/usr/bin/env bash
# Runs benchmarks.gpu_training on a GPU machine without TensorFlow (the `device` tool's):
# installs the carried wheels (benchmarks/device_wheels.sh made them here), runs the
# benchmark under Keras' JAX backend, and leaves the updated BENCHMARKS.md in $OUT.
#   device run: bash benchmarks/gpu_on_device.sh [benchmark flags], carry [".whl"]
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl
export PYTHONPATH="/tmp/site:$PWD" KERAS_BACKEND=jax PYTHONUNBUFFERED=1
python3 -m benchmarks.gpu_training "$@"
if [ -n "${OUT:-}" ]; then cp BENCHMARKS.md "$OUT/"; fi

#!/usr/bin/env bash
# Downloads into .whl/ the wheels benchmarks/gpu_on_device.sh installs on a GPU machine
# lent through the `device` tool: Keras and the two dependencies that machine lacks (its
# Python 3.12 has JAX, numpy, h5py, absl-py, rich, ml-dtypes, packaging and safetensors).
# keras_vgg itself travels as the working tree. About 3 MB; .whl/ is git-ignored.
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf .whl && mkdir -p .whl
python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
    "keras==$(python3 -c 'import keras; print(keras.__version__)' 2>/dev/null || echo 3.15.1)" \
    namex optree
ls -1 .whl

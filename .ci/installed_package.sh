#!/usr/bin/env bash
# The package as `pip install keras-vgg` gives it: builds the wheel, installs it with its
# dependencies into a new virtual environment, and runs an installed console command on
# an image and the anatomy module, away from the checkout.
#
#   bash .ci/installed_package.sh [install|check|all] [python]
#
# `install` builds and installs (no TensorFlow runs, so make test overlaps it with its
# test passes), `check` runs the installed commands, `all` (the default) does both.
set -euo pipefail
cd "$(dirname "$0")/.."
phase="${1:-all}"
python="${2:-.venv/bin/python}"
work="build/installed"
case "$phase" in install|check|all) ;; *) echo "unknown phase $phase" >&2; exit 2 ;; esac

if [ "$phase" != check ]; then
    rm -rf "$work"
    "$python" -m pip wheel --quiet --no-deps --wheel-dir "$work/wheel" .
    "$python" -m venv "$work/venv"
    "$work/venv/bin/pip" install --quiet "$(ls "$work"/wheel/keras_vgg-*.whl)[cpu]"
    touch "$work/.installed"
fi
[ "$phase" = install ] && exit 0

test -f "$work/.installed" || { echo "$work has no installed package: run the install phase" >&2; exit 1; }
cd "$work"
test -f venv/lib/python*/site-packages/keras_vgg-*.dist-info/licenses/LICENSE
# The predict command's inputs, then `python -m keras_vgg.anatomy A` as runpy runs it, in
# one process.
venv/bin/python - <<'PY' > anatomy.txt
import runpy
import sys

import keras_vgg  # first: it quiets TensorFlow's start-up lines
import numpy as np
import tensorflow as tf

keras_vgg.vgg("A", width_multiplier=1 / 16, classes=3).save_weights("a.weights.h5")
tf.io.write_file("image.png", tf.io.encode_png(np.full((60, 80, 3), 200, np.uint8)))
sys.argv = ["keras_vgg.anatomy", "A"]
runpy.run_module("keras_vgg.anatomy", run_name="__main__", alter_sys=True)
PY
grep -q "^Totals" anatomy.txt || { cat anatomy.txt; exit 1; }
echo "installed python -m keras_vgg.anatomy printed config A's tables"
printf 'cat\ndog\nowl\n' > classes.txt
venv/bin/keras-vgg-predict --config=A --weights=a.weights.h5 --width_multiplier=0.0625 \
    --class_names=classes.txt --top_k=1 --json image.png > answer.json
venv/bin/python -c "
import json
(answer,) = json.load(open('answer.json'))
assert answer['image'] == 'image.png' and answer['predictions'][0]['name'] in ('cat', 'dog', 'owl'), answer
print('installed keras-vgg-predict answered:', answer['predictions'][0])"

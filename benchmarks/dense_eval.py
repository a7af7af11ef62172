"""Dense evaluation at Q=384 with flip against the paper's 150-crop multi-crop evaluation
(5x5 grid x 2 flips at Q in {256, 384, 512}), through `keras_vgg.evaluation`:
  speed      images/s of full-size VGG16 (random weights; compute does not depend on them)
             on the scikit-image photographs at 500x375 / 375x500
  agreement  top-1 agreement of the two protocols, and each one's top-1 error, with a
             trained net: the demo's run (`make demo` writes it), dense at its single-scale
             Q and multi-crop at its Q set, on its held-out images. No ImageNet weights can
             be downloaded here.

    python -m benchmarks.dense_eval [--quick] [--images=1] [--demo=demo]
"""

from __future__ import annotations

import os
import sys
import tempfile

import numpy as np
from absl import app, flags

import keras_vgg
from benchmarks import report
from benchmarks.photos import imagenet_like_jpegs
from keras_vgg import evaluation, runs

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "recipes"))
import demo as demo_recipe  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_bool("quick", False, "Smoke run: a narrow net, BENCHMARKS.md untouched.")
flags.DEFINE_integer("images", 1, "Photographs for the speed measurement.")
flags.DEFINE_string("demo", "demo", "The `make demo` work directory (trained weights, images).")


def photo_folder(root: str, count: int) -> str:
    """`count` ImageNet-sized photographs as a labelled flat folder source."""
    folder = os.path.join(root, "photos")
    os.makedirs(folder)
    for i, jpeg in enumerate(imagenet_like_jpegs()[:count]):
        with open(os.path.join(folder, f"{i}.jpg"), "wb") as file:
            file.write(jpeg)
    labels = os.path.join(root, "labels.txt")
    with open(labels, "w", encoding="utf8") as file:
        file.write("".join(f"{i}.jpg {i}\n" for i in range(count)))
    return f"folder:{folder}?labels={labels}"


def speed(source: str, width: float) -> tuple[float, float]:
    """images/s of (dense Q=384 with flip, 150-crop multi-crop)."""
    model = keras_vgg.vgg("D", weights=None, width_multiplier=width)
    (dense,) = evaluation.evaluate(model, source, protocols=("dense",), test_scales=(384,))
    (crops,) = evaluation.evaluate(model, source, protocols=("multi_crop",),
                                   test_scales=(256, 384, 512))
    return dense.images_per_second, crops.images_per_second


def agreement(demo: str) -> tuple[runs.Run, int, float, float, float] | None:
    """The demo's run, its held-out image count, and (top-1 agreement, dense top-1 error,
    multi-crop top-1 error) of its net; None before `make demo` has run."""
    run_dir = demo_recipe.run_config(demo, epochs=1).model_dir
    run = runs.load(run_dir) if runs.is_run(run_dir) else None
    if run is None or not os.path.exists(run.weights_path):
        return None
    model = run.build_model()
    dense, labels = evaluation.posteriors(model, run.config.val_data, protocol="dense",
                                          test_scales=(run.test_scale,))
    crops, _ = evaluation.posteriors(model, run.config.val_data, protocol="multi_crop",
                                     test_scales=run.test_scales)
    agree = float(np.mean(dense.argmax(1) == crops.argmax(1)))
    return (run, len(labels), agree, evaluation.top_k_error(dense, labels, 1),
            evaluation.top_k_error(crops, labels, 1))


def main(argv):
    del argv
    with tempfile.TemporaryDirectory() as root:
        source = photo_folder(root, 1 if FLAGS.quick else FLAGS.images)
        dense_rate, crop_rate = speed(source, 1 / 16 if FLAGS.quick else 1.0)
    rows = ["| protocol | images/s | vs multi-crop |", "|---|---|---|",
            f"| dense, Q=384, with flip (2 passes) | {dense_rate:.3f} | "
            f"{dense_rate / crop_rate:.1f}x |",
            f"| multi-crop, Q=256,384,512, 150 crops | {crop_rate:.3f} | 1.0x |"]
    agreed = agreement(FLAGS.demo)
    if agreed is None:
        rows.append(f"\nTop-1 agreement: not measured ({FLAGS.demo} holds no finished run: "
                    "run `make demo` first).")
    else:
        run, images, agree, dense_error, crop_error = agreed
        scales = ",".join(str(q) for q in run.test_scales)
        rows.append(f"\nTop-1 agreement of dense (Q={run.test_scale}, flip) and multi-crop "
                    f"(Q={scales}, {50 * len(run.test_scales)} crops) with the demo's trained "
                    f"net on its {images} held-out images: {agree:.1%}; top-1 error dense "
                    f"{dense_error:.1%}, multi-crop {crop_error:.1%}.")
    table = "\n".join(rows)
    print(table)
    if not FLAGS.quick:
        report.write_section(
            "Dense against multi-crop evaluation",
            f"python -m benchmarks.dense_eval --images={FLAGS.images}",
            f"Speed: full-size VGG16, random weights, {FLAGS.images} photograph(s) at "
            f"500x375 / 375x500, through `keras_vgg.evaluation` (decoding included), one "
            f"pass each: one pass is exposed to the host's noise, more `--images` steady the "
            f"figure.\n\n"
            f"{table}\n",
        )


if __name__ == "__main__":
    app.run(main)

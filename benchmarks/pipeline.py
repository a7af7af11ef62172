"""Input pipeline throughput per CPU core: decode-only, the naive path, and ours.

Real photographs (the ones scikit-image ships) re-encoded as ImageNet-typical JPEGs
(500x375 or 375x500, quality 90), augmented with the paper's scale jittering S in
[256, 512] and 224 crops. The process is pinned to one CPU core; each path runs on one
tf.data thread, alternating, best of `--repeats`:
  decode-only  decode_jpeg of the whole image (the ceiling for any path that decodes)
  naive        decode all, rescale all to S, random crop, flip; colour shift per batch
  naive, float32 resize
               the same, with the decoded image cast to float32 before resizing, as ours
               does: ours / this row is what decoding and resizing only the window
               is worth alone
  ours         keras_vgg.image_ops.train_transform (decode only the crop window, resize it,
               flip); colour shift per batch
  naive+guard, ours+guard
               the same inside the guard that skips and names undecodable files, as
               train_dataset runs its transform
  window decode, window decode+resize
               ours' first steps alone (decode_and_crop_jpeg of the crop window, then the
               resize to the crop): where ours spends its time
Images are counted inside the graph (`Dataset.reduce`), so no path pays for Python.

    python -m benchmarks.pipeline [--images=512] [--repeats=5] [--quick]
"""

from __future__ import annotations

import os
import sys
import time

if __name__ == "__main__":  # per core: this process, and every thread it starts, on one CPU
    os.sched_setaffinity(0, [min(os.sched_getaffinity(0))])

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

from benchmarks import report  # noqa: E402
from benchmarks.photos import PHOTOS, imagenet_like_jpegs  # noqa: E402
from keras_vgg import guard, image_ops  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_integer("images", 512, "Images per timed pass.")
flags.DEFINE_integer("repeats", 5, "Timed passes per path (best is kept).")
flags.DEFINE_bool("quick", False, "Smoke run: few images, one pass, BENCHMARKS.md untouched.")

def naive_transform(contents, seed, float32=False):
    """Decode everything, rescale everything to S, then crop and flip. The decoded uint8
    image is resized as it is, as in the usual `tf.image.resize(tf.io.decode_jpeg(...))`,
    or with `float32` cast first, as ours casts its window."""
    s = tf.random.stateless_uniform([], image_ops.derived_seed(seed, 3), image_ops.SCALE_JITTER[0],
                                    image_ops.SCALE_JITTER[1] + 1, dtype=tf.int32)
    image = tf.io.decode_jpeg(contents, channels=3)
    image = image_ops.rescale_shorter_side(tf.cast(image, tf.float32) if float32 else image, s)
    crop = image_ops.CROP_SIZE
    image = tf.image.stateless_random_crop(image, [crop, crop, 3], seed)
    return tf.image.stateless_random_flip_left_right(image, image_ops.derived_seed(seed, 1))


def records(jpegs: list[bytes], count: int) -> tf.data.Dataset:
    contents = [jpegs[i % len(jpegs)] for i in range(count)]
    seeds = np.stack([np.arange(count), np.arange(count) + 7], axis=1)
    return tf.data.Dataset.from_tensor_slices({"image": contents, "seed": seeds,
                                               "label": np.zeros(count, "int32"),
                                               "id": [str(i) for i in range(count)]})


def single_core(dataset: tf.data.Dataset) -> tf.data.Dataset:
    options = tf.data.Options()
    options.threading.private_threadpool_size = 1
    options.threading.max_intra_op_parallelism = 1
    options.autotune.enabled = False
    return dataset.with_options(options)


def paths(jpegs, count):
    """Each training path ends with the same per-batch colour shift (32 images a batch)."""
    base = records(jpegs, count)

    def coloured(batches):
        return batches.map(lambda batch: image_ops.colour_shift(
            batch["image"], image_ops.derived_seed(batch["seed"][0], 2)))

    def image_by(transform):
        return base.map(lambda r: {"image": transform(r["image"], r["seed"]), "seed": r["seed"]})

    def guarded(transform):
        return guard.map_skipping_undecodable(
            base, lambda r: transform(r["image"], r["seed"])).rebatch(32)

    return {
        "decode-only": base.map(lambda r: tf.io.decode_jpeg(r["image"], channels=3)),
        "naive": coloured(image_by(naive_transform).batch(32)),
        "naive, float32 resize": coloured(image_by(
            lambda contents, seed: naive_transform(contents, seed, float32=True)).batch(32)),
        "ours": coloured(image_by(image_ops.train_transform).batch(32)),
        # as train_dataset runs them: inside the guard, its groups of survivors re-batched
        "naive+guard": coloured(guarded(naive_transform)),
        "ours+guard": coloured(guarded(image_ops.train_transform)),
        "window decode": base.map(lambda r: decode_window(r["image"], r["seed"])),
        "window decode+resize": base.map(lambda r: tf.image.resize(
            tf.cast(decode_window(r["image"], r["seed"]), tf.float32), [image_ops.CROP_SIZE] * 2)),
    }


def decode_window(contents, seed):
    """The crop window of ours, decoded (`[h, w, 3]` uint8): ours without the resize, flip
    and colour shift."""
    window = image_ops.crop_window(
        tf.image.extract_jpeg_shape(contents), scale=image_ops.SCALE_JITTER,
        crop_size=(image_ops.CROP_SIZE, image_ops.CROP_SIZE), seed=seed)
    return tf.io.decode_and_crop_jpeg(contents, window, channels=3)


def images_per_second(dataset: tf.data.Dataset, count: int) -> float:
    """Counted inside the graph (`Dataset.reduce`): decode-only yields one image per
    element and the others a batch, and no path should pay for Python's iteration."""

    def add(total, element):
        batched = element.shape.rank != 3
        return total + (tf.shape(element, tf.int64)[0] if batched else 1)

    start = time.perf_counter()
    seen = int(dataset.reduce(tf.constant(0, tf.int64), add))
    elapsed = time.perf_counter() - start
    if seen != count:
        raise RuntimeError(f"expected {count} images, the pipeline gave {seen}")
    return count / elapsed


def main(argv):
    del argv
    count, repeats = (32, 1) if FLAGS.quick else (FLAGS.images, FLAGS.repeats)
    jpegs = imagenet_like_jpegs()
    datasets = {name: single_core(ds) for name, ds in paths(jpegs, count).items()}
    for dataset in datasets.values():  # warm-up: trace functions, fill caches
        images_per_second(dataset, count)
    best = dict.fromkeys(datasets, 0.0)
    for repeat in range(repeats):
        for name, dataset in datasets.items():
            best[name] = max(best[name], images_per_second(dataset, count))
        print(f"pass {repeat + 1}/{repeats}: " + ", ".join(
            f"{name} {rate:.0f}/s" for name, rate in best.items()), file=sys.stderr)
    rows = [
        "| path | images/s per core | vs naive | vs decode-only |",
        "|---|---|---|---|",
    ]
    for name, rate in best.items():
        rows.append(f"| {name} | {rate:.0f} | {rate / best['naive']:.2f}x | "
                    f"{rate / best['decode-only']:.0%} |")
    table = "\n".join(rows)
    print(table)
    if not FLAGS.quick:
        report.write_section(
            "Input pipeline (per core)",
            f"python -m benchmarks.pipeline --images={count} --repeats={repeats}",
            f"{len(PHOTOS)} scikit-image photographs re-encoded at 500x375 / 375x500 (JPEG q90); "
            f"scale jitter S in {list(image_ops.SCALE_JITTER)}, {image_ops.CROP_SIZE} crops, "
            f"flip, and the colour shift per batch of 32 in every training path; the process "
            f"pinned to "
            f"one CPU core, one tf.data thread per path, best of {repeats} passes of {count} "
            f"images. The naive path resizes the decoded uint8 image, as "
            f"`tf.image.resize(tf.io.decode_jpeg(...))` does; 'naive, float32 resize' casts it "
            f"to float32 first, as ours does (the same pixels, a faster kernel); ours against "
            f"it, {best['ours'] / best['naive, float32 resize']:.2f}x, is what decoding and "
            f"resizing only the crop window is worth alone. The +guard rows run the transform "
            f"as `train_dataset` does, inside the guard that skips and names undecodable "
            f"files: ours+guard is {best['ours+guard'] / best['naive+guard']:.2f}x "
            f"naive+guard. The last two rows are ours' first steps alone, without the flip, "
            f"the colour shift or the guard. Images are counted inside the graph "
            f"(`Dataset.reduce`).\n\n{table}\n",
        )


if __name__ == "__main__":
    app.run(main)

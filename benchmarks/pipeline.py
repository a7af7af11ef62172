"""The input pipeline as training runs it, per CPU core: `keras_vgg.data.train_dataset`
against torchvision's loaders, with a profile of its stages beneath.

Real photographs (the ones scikit-image ships) re-encoded as ImageNet-typical JPEGs
(500x375 or 375x500, quality 90), written as files in ImageNet's folder layout (4
classes). Every contender gets the paper's augmentation: the shorter side rescaled to S in
[256, 512], a 224 crop, a flip, the PCA colour shift, then the caffe preprocessing, in
shuffled batches of 32 with labels. The process is pinned to one CPU core, and so is the
torchvision process; the rows are measured in interleaved rounds (median and best):
  train_dataset        `keras_vgg.data.train_dataset` at its defaults, what training
                       iterates: files read, shuffled, seeded, through the guard that skips
                       and names bad files, batched, colour-shifted and preprocessed
  torchvision PIL      ImageFolder + PIL + v2 transforms, DataLoader(num_workers=0)
  torchvision decode_jpeg
                       torchvision.io.decode_jpeg + the same v2 transforms on uint8 tensors
                       (`benchmarks/torch_loaders.py`, run with --torch_python: an
                       environment with torchvision, which `make bench` makes)
  decode only          read_file + decode_jpeg of the whole image: the ceiling of any path
                       that decodes it
The profile rows are prefixes of train_dataset's work on one tf.data thread: the crop
window decoded (read_file + decode_and_crop_jpeg), then `image_ops.train_transform` (that,
resized to the crop, flipped), then the same inside the guard, batched; and
train_dataset with tf.data's autotuning on, which it turns off.
Evaluation's table, in file order at Q=384:
  eval_dataset         `keras_vgg.data.eval_dataset`'s centre crop, and its multi-crop view
                       (the 5x5 grid of crops of an image, no flip)
  torchvision decode_jpeg, centre crop
                       decode_jpeg + Resize(Q) + CenterCrop + the caffe preprocessing

    python -m benchmarks.pipeline [--images=512] [--rounds=4] [--quick]
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

if __name__ == "__main__":  # per core: this process, and every thread it starts, on one CPU
    os.sched_setaffinity(0, [min(os.sched_getaffinity(0))])

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

from benchmarks import report  # noqa: E402
from benchmarks.photos import PHOTOS, imagenet_like_jpegs  # noqa: E402
from keras_vgg import data, guard, image_ops, imagenet, sources  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_integer("images", 512, "Image files per timed pass.")
flags.DEFINE_integer("rounds", 4, "Interleaved timed rounds of every row.")
flags.DEFINE_string("torch_python", "build/peers/bin/python",
                    "The Python of an environment with torchvision, for the peer rows.")
flags.DEFINE_bool("quick", False, "Smoke run: few images, one round, BENCHMARKS.md untouched.")

BATCH = 32
CLASSES = 4
# The rows of each table: ours first, then its peers (torchvision's, from torch_loaders.py).
TRAINING = ("train_dataset", "torchvision PIL", "torchvision decode_jpeg", "decode only",
            "profile: window decode", "profile: train_transform",
            "profile: train_transform in the guard",
            "profile: train_dataset, tf.data autotuning on")
EVALUATION = ("eval_dataset, centre crop", "torchvision decode_jpeg, centre crop",
              "eval_dataset, multi-crop (25 crops an image)")
PEER_ROWS = {"PIL": "torchvision PIL", "decode_jpeg": "torchvision decode_jpeg",
             "decode_jpeg, centre crop": "torchvision decode_jpeg, centre crop"}


def write_folder(root: str, jpegs: list[bytes], count: int) -> str:
    """`count` JPEG files in ImageNet's layout under `root` (`class_k/image_i.JPEG`)."""
    for index in range(count):
        directory = os.path.join(root, f"class_{index % CLASSES}")
        os.makedirs(directory, exist_ok=True)
        with open(os.path.join(directory, f"image_{index}.JPEG"), "wb") as file:
            file.write(jpegs[index % len(jpegs)])
    return root


def single_thread(dataset: tf.data.Dataset) -> tf.data.Dataset:
    options = tf.data.Options()
    options.threading.private_threadpool_size = 1
    options.threading.max_intra_op_parallelism = 1
    options.autotune.enabled = False
    return dataset.with_options(options)


def autotuned(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """`dataset` with tf.data's autotuning, which `data.prefetched` turns off, back on."""
    options = tf.data.Options()
    options.autotune.enabled = True
    return dataset.with_options(options)


def tf_rows(folder: str) -> dict[str, tf.data.Dataset]:
    """train_dataset as training runs it, the decode ceiling, and the profile's prefixes."""
    spec = f"folder:{folder}"
    records = data.with_seeds(sources.open_source(spec, split="train").dataset, 0, None)
    scale, crop = image_ops.SCALE_JITTER, (image_ops.CROP_SIZE, image_ops.CROP_SIZE)

    def window(record):
        contents = sources.encoded_image(record)
        box = image_ops.crop_window(tf.image.extract_jpeg_shape(contents), scale=scale,
                                    crop_size=crop, seed=record["seed"])
        return tf.io.decode_and_crop_jpeg(contents, box, channels=3)

    def transform(record):
        return image_ops.train_transform(sources.encoded_image(record), record["seed"],
                                         scale=scale, crop_size=crop, flip=True)

    return {
        "train_dataset": data.train_dataset(spec, global_batch_size=BATCH, seed=0),
        "eval_dataset, centre crop": data.eval_dataset(
            spec, view="center", test_scale=image_ops.TEST_SCALE, batch_size=BATCH),
        "eval_dataset, multi-crop (25 crops an image)": data.eval_dataset(
            spec, view="multi_crop", test_scale=image_ops.TEST_SCALE),
        "decode only": single_thread(records.map(
            lambda r: tf.io.decode_jpeg(sources.encoded_image(r), channels=3))),
        "profile: window decode": single_thread(records.map(window)),
        "profile: train_transform": single_thread(records.map(transform)),
        "profile: train_transform in the guard": single_thread(
            guard.map_skipping_undecodable(records, transform, records_can_fail=False)
            .batch(BATCH)),
        "profile: train_dataset, tf.data autotuning on": autotuned(
            data.train_dataset(spec, global_batch_size=BATCH, seed=0)),
    }


def images_per_second(dataset: tf.data.Dataset, count: int) -> float:
    """One pass, counted inside the graph (`Dataset.reduce`), so no row pays for Python."""

    def add(total, element):
        images, labels = element if isinstance(element, tuple) else (element, None)
        if isinstance(images, dict):
            images = images["image"]
        if labels is not None:  # one label an image; a multi-crop element's crops share one
            return total + tf.size(labels, tf.int64)
        batched = images.shape.rank == 4
        return total + (tf.shape(images, tf.int64)[0] if batched else 1)

    start = time.perf_counter()
    seen = int(dataset.reduce(tf.constant(0, tf.int64), add))
    elapsed = time.perf_counter() - start
    if seen != count:
        raise RuntimeError(f"expected {count} images, the pipeline gave {seen}")
    return count / elapsed


def peer_settings() -> dict:
    """The augmentation's numbers, handed to the torchvision process."""
    _, bgr_shift = imagenet.channel_affine("caffe")
    return {"scale": list(image_ops.SCALE_JITTER), "crop_size": image_ops.CROP_SIZE,
            "test_scale": image_ops.TEST_SCALE,
            "batch_size": BATCH, "eigenvalues": list(map(float, image_ops.PCA_EIGENVALUES)),
            "eigenvectors": np.asarray(image_ops.PCA_EIGENVECTORS, float).tolist(),
            "alpha_stddev": image_ops.PCA_ALPHA_STDDEV,
            "bgr_mean": [-float(value) for value in bgr_shift]}


def peer_rates(folder: str, *, workers: int = 0) -> dict[str, float] | str:
    """torchvision's rows, or why they were not measured: pinned to this process's core,
    or, with `workers` DataLoader worker processes, on every core."""
    python = FLAGS.torch_python
    if not os.path.exists(python):
        return (f"not measured: no {python} (`make bench` makes that environment, with "
                "torchvision)")
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "torch_loaders.py")
    result = subprocess.run(
        [python, script, f"--folder={folder}", f"--settings={json.dumps(peer_settings())}",
         *([f"--workers={workers}"] if workers else [f"--core={min(os.sched_getaffinity(0))}"])],
        capture_output=True, text=True, check=False, timeout=1800)
    if result.returncode:
        raise RuntimeError(f"the torchvision loaders failed:\n{result.stderr[-3000:]}")
    return {PEER_ROWS[name]: rate for name, rate in json.loads(result.stdout).items()}


def table(measured: dict[str, list[float]], rows: tuple[str, ...],
          peers_missing: str | None, unit: str = "images/s per core") -> str:
    """A markdown table of `rows` (ours first): median, best and worst images/s, and ours'
    median over each row's."""
    ours = statistics.median(measured[rows[0]])
    lines = [f"| path | {unit}, median | best | worst | "
             f"{rows[0].split(',')[0]} / this |",
             "|---|---|---|---|---|"]
    for name in rows:
        rates = measured[name]
        if not rates:
            lines.append(f"| {name} | {peers_missing} | | | |")
            continue
        median = statistics.median(rates)
        lines.append(f"| {name} | {median:.0f} | {max(rates):.0f} | {min(rates):.0f} | "
                     f"{ours / median:.2f}x |")
    return "\n".join(lines)


def main(argv):
    del argv
    count, rounds = (BATCH, 1) if FLAGS.quick else (FLAGS.images, FLAGS.rounds)
    with tempfile.TemporaryDirectory() as root:
        folder = write_folder(root, imagenet_like_jpegs(), count)
        datasets = tf_rows(folder)
        for dataset in datasets.values() if not FLAGS.quick else ():  # unreported: no warm-up
            images_per_second(dataset, count)  # warm-up: trace functions, fill the file cache
        measured = {name: [] for name in [*TRAINING, *EVALUATION]}
        peers_missing = None
        for round_ in range(rounds):
            for name, dataset in datasets.items():
                measured[name].append(images_per_second(dataset, count))
            peers = peer_rates(folder)
            if isinstance(peers, str):
                peers_missing = peers
            else:
                for name, rate in peers.items():
                    measured[name].append(rate)
            print(f"round {round_ + 1}/{rounds}: " + ", ".join(
                f"{name} {rates[-1]:.0f}/s" for name, rates in measured.items() if rates),
                file=sys.stderr)
    tables = "\n\n".join(table(measured, rows, peers_missing)
                           for rows in (TRAINING, EVALUATION))
    print(tables)
    if not FLAGS.quick:
        report.write_section(
            "Input pipeline (per core)",
            f"python -m benchmarks.pipeline --images={count} --rounds={rounds} "
            f"--torch_python={FLAGS.torch_python}",
            f"{count} JPEG files ({len(PHOTOS)} scikit-image photographs re-encoded at "
            f"500x375 / 375x500, q90) in {CLASSES} class folders. Every row's augmentation: "
            f"S in {list(image_ops.SCALE_JITTER)}, {image_ops.CROP_SIZE} crops, flip, the "
            f"PCA colour shift and the caffe preprocessing, shuffled batches of {BATCH}. "
            "train_dataset runs at its defaults, as training iterates it; the torchvision "
            "rows run `benchmarks/torch_loaders.py` in an environment with torchvision, "
            "DataLoader(num_workers=0). Both processes pinned to the same core; "
            f"{rounds} interleaved rounds; worst is the slowest round (a pass in which the "
            "pipeline stalls shows there). The profile rows are prefixes of train_dataset's "
            "work on one tf.data thread, and train_dataset with tf.data's autotuning on, "
            "which it turns off. Evaluation: the test-time views at "
            f"Q={image_ops.TEST_SCALE} in file order (multi-crop: the 5x5 grid, no flip), and "
            "torchvision's decode_jpeg loader with Resize(Q) + CenterCrop.\n\n" + tables
            + "\n",
        )


if __name__ == "__main__":
    app.run(main)

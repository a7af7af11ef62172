"""The paper's test protocols (Sect. 3.2) and top-1 / top-5 error.

  dense       the fully-convolutional net on the whole image rescaled to Q, scores averaged
              over space; several Q average their posteriors.
  multi_crop  a 5x5 grid of crops (and their mirrors) at each Q through the original net;
              posteriors averaged over crops and scales (150 crops for 3 scales).
  combined    the average of the dense and multi-crop posteriors.

Horizontal-flip averaging (`flip=True`) applies to both. ConvNet fusion (Sect. 4.4,
Table 6) averages the posteriors of several nets under one protocol (`fuse`).

A net (`keras_vgg.nets`) is evaluated at its Q set (a run's: the paper's for its S), after
checking that the data labels its classes in its order (`evaluate_net`); `max_images`
evaluates a seeded random sample (`keras_vgg.sources.sample`). Fusion evaluates each net at
its own Q set and with its own preprocessing, then averages the posteriors
(`nets_posteriors`, `fuse`): the fused posteriors are exactly the mean of the per-net ones,
so a net fused with itself is unchanged. The paper's reference: D and E fused, multi-crop
and dense combined, 23.7% top-1 / 6.8% top-5 validation error (6.8% test), against 7.0%
test for E alone.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence

import keras
import numpy as np

from keras_vgg import data, image_ops, inference, nets, serving, sources
from keras_vgg.progress import bar as progress_bar
from keras_vgg.requires_tensorflow import tf

PROTOCOLS = ("dense", "multi_crop", "combined")


@dataclasses.dataclass(frozen=True)
class Result:
    """One row of a Table 3-5 style report."""

    protocol: str
    test_scales: tuple[int, ...]
    top1_error: float
    top5_error: float
    images: int
    images_per_second: float


def top_k_error(probabilities: np.ndarray, labels: np.ndarray, k: int) -> float:
    """Fraction of rows of `[n, classes]` whose label is not among the k highest scores."""
    if len(labels) == 0:
        raise ValueError("no images were evaluated")
    top = np.argsort(-probabilities, axis=1)[:, :k]
    return float(np.mean(~np.any(top == labels[:, None], axis=1)))


def _posteriors_per_image(model_fn, per_scale: Sequence[tf.data.Dataset], *,
                          count: int | None = None, progress: bool = False):
    """`[n, classes]` posteriors (averaged over scales, flips and crops) and `[n]` labels,
    from one `eval_dataset(..., with_ids=True)` per test scale; with `progress`, a bar
    over `count` images."""
    posteriors, labels, ids = [], [], []
    bar = progress_bar(count, enabled=progress)
    for elements in tf.data.Dataset.zip(tuple(per_scale)):
        scale_posteriors = []
        for images, label, image_id in elements:
            scale_posteriors.append(np.mean(model_fn(images), axis=0))  # over flips / crops
            if len(scale_posteriors) == 1:
                labels.append(int(label))
                ids.append(image_id.numpy())
            elif image_id.numpy() != ids[-1]:
                raise RuntimeError("scales went out of step: an image was skipped at one scale")
        posteriors.append(np.mean(scale_posteriors, axis=0))
        if bar:
            bar.add(1)
    if not posteriors:
        raise ValueError("no images were evaluated: every one was skipped (see the lines "
                         "above)")
    return np.stack(posteriors), np.array(labels)


def _image_count(source: str, split: str, max_images: int | None) -> int | None:
    """How many images an evaluation of `source` reads (None: the source does not say)."""
    total = sources.open_single_label(source, split=split, purpose="evaluation").num_examples
    if total is None:
        return max_images
    return min(total, max_images) if max_images else total


def _protocol_inputs(model: keras.Model, source: str, *, protocol: str,
                     test_scales: Sequence[int], flip: bool, preprocessing: str, split: str,
                     max_images: int | None):
    """`(images -> [n, classes] posteriors, [dataset per scale])` for one protocol.

    "dense": `inference.DenseClassifier` on each decoded image (one dataset; the scales and
    the flip are averaged inside). "multi_crop": the model itself on the crops of one
    dataset per scale, preprocessed in the pipeline.
    """
    if protocol == "dense":
        classify = inference.DenseClassifier(model, test_scales=test_scales, flip=flip,
                                             preprocessing=preprocessing)
        return (lambda images: classify(images).numpy(),
                [data.eval_dataset(source, view="original", split=split, with_ids=True,
                                   max_images=max_images)])
    if protocol != "multi_crop":
        raise ValueError(f"protocol must be 'dense' or 'multi_crop', got {protocol!r}")
    crop_size = model.input_shape[1]
    if any(q < crop_size for q in test_scales):
        raise ValueError(f"test scales {list(test_scales)} must be at least the crop {crop_size}")
    # One graph for every batch, traced here (not on the first timed image).
    traced = tf.function(lambda images: model(images, training=False),
                         autograph=False).get_concrete_function(
        tf.TensorSpec([None, crop_size, crop_size, model.input_shape[-1]], tf.float32))
    return (lambda images: traced(images).numpy(),
            [data.eval_dataset(source, view="multi_crop", test_scale=q, crop_size=crop_size,
                               flip=flip, preprocessing=preprocessing, split=split,
                               with_ids=True, max_images=max_images) for q in test_scales])


def posteriors(
    model: keras.Model,
    source: str,
    *,
    protocol: str,
    test_scales: Sequence[int] = (image_ops.TEST_SCALE,),
    flip: bool = True,
    preprocessing: str = "caffe",
    split: str = "validation",
    max_images: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """`[n, classes]` posteriors of one protocol ("dense" or "multi_crop"), averaged over
    scales, flips and crops, and the `[n]` labels; of a random sample of `max_images`
    images (`sources.sample`), or of all."""
    sources.open_single_label(source, split=split, purpose="evaluation")
    model_fn, per_scale = _protocol_inputs(
        model, source, protocol=protocol, test_scales=test_scales, flip=flip,
        preprocessing=preprocessing, split=split, max_images=max_images)
    return _posteriors_per_image(model_fn, per_scale)


def evaluate(
    model: keras.Model,
    source: str,
    *,
    protocols: Sequence[str] = ("dense",),
    test_scales: Sequence[int] = (image_ops.TEST_SCALE,),
    flip: bool = True,
    preprocessing: str = "caffe",
    split: str = "validation",
    max_images: int | None = None,
    progress: bool = False,
) -> list[Result]:
    """Evaluates a trained model (with its head) under the paper's protocols.

    Args:
      model: a `keras_vgg` model built with `include_top=True` at its training crop size.
      source: a data source spec (see `keras_vgg.sources`).
      protocols: any of "dense", "multi_crop", "combined".
      test_scales: the scales Q; several Q average their posteriors.
      flip: also evaluate mirror images and average.
      max_images: evaluate a random sample of this many images (the same sample for every
        protocol and net: `sources.sample` with seed 0), or all.
      progress: show a progress bar per protocol.

    Returns:
      One `Result` per protocol, errors as fractions.
    """
    measured = _measured(model, source, protocols=protocols, test_scales=test_scales,
                         flip=flip, preprocessing=preprocessing, split=split,
                         max_images=max_images, progress=progress)
    results = []
    for protocol in protocols:
        probabilities, labels, seconds = measured[protocol]
        results.append(Result(protocol, tuple(test_scales),
                              top_k_error(probabilities, labels, 1),
                              top_k_error(probabilities, labels, 5), len(labels),
                              len(labels) / seconds))
    return results


def _measured(model: keras.Model, source: str, *, protocols: Sequence[str],
              test_scales: Sequence[int], progress: bool = False, **options
              ) -> dict[str, tuple[np.ndarray, np.ndarray, float]]:
    """`{protocol: ([n, classes] posteriors, [n] labels, seconds)}` for `protocols`."""
    unknown = sorted(set(protocols) - set(PROTOCOLS))
    if unknown:
        raise ValueError(f"unknown protocols {unknown}; expected some of {PROTOCOLS}")
    count = _image_count(source, options["split"], options["max_images"])
    measured = {}
    for protocol in [p for p in ("dense", "multi_crop") if p in protocols or
                     "combined" in protocols]:
        # The FC conversion and the tracing are not evaluation time.
        model_fn, per_scale = _protocol_inputs(model, source, protocol=protocol,
                                               test_scales=test_scales, **options)
        if progress:
            print(f"{protocol} at Q={','.join(map(str, test_scales))}:", flush=True)
        start = time.perf_counter()
        measured[protocol] = _posteriors_per_image(model_fn, per_scale, count=count,
                                                   progress=progress)
        measured[protocol] += (time.perf_counter() - start,)
    if "combined" in protocols:
        (dense_p, labels, dense_s), (crop_p, _, crop_s) = measured["dense"], measured["multi_crop"]
        measured["combined"] = ((dense_p + crop_p) / 2, labels, dense_s + crop_s)
    return measured


@dataclasses.dataclass(frozen=True)
class FusionRow:
    """One row of a Table 6 style report: a net, or the fusion of several."""

    nets: str
    protocol: str
    top1_error: float
    top5_error: float
    images: int


def nets_posteriors(
    nets_to_fuse: Sequence[nets.Net], source: str, *, protocol: str = "dense",
    flip: bool = True, split: str = "validation", max_images: int | None = None,
    progress: bool = False,
) -> tuple[list[np.ndarray], np.ndarray]:
    """Each net's `[n, classes]` posteriors under `protocol` (at its own Q set and
    preprocessing) on the same images, and their `[n]` labels.

    Raises:
      ValueError: fewer than two nets, nets with other classes, or a source that labels
        other classes.
    """
    if len(nets_to_fuse) < 2:
        raise ValueError(f"fusion needs at least two nets, got {len(nets_to_fuse)}")
    classes = {net.name: net.num_classes for net in nets_to_fuse}
    if len(set(classes.values())) > 1:
        raise ValueError(f"the nets predict different numbers of classes: {classes}")
    posteriors_of, labels = [], None
    for net in nets_to_fuse:
        net.check_labels(source, split=split)
        if progress:
            print(f"{net.name}:", flush=True)
        probabilities, net_labels, _ = _measured(
            net.build(), source, protocols=(protocol,), test_scales=net.test_scales,
            flip=flip, preprocessing=net.preprocessing, split=split,
            max_images=max_images, progress=progress)[protocol]
        if labels is not None and not np.array_equal(labels, net_labels):
            raise RuntimeError("the nets were evaluated on different images")
        labels = net_labels
        posteriors_of.append(probabilities)
    return posteriors_of, labels


def fuse(nets_to_fuse: Sequence[nets.Net], source: str, *, protocol: str = "dense",
         **options) -> list[FusionRow]:
    """ConvNet fusion (Sect. 4.4): the mean of the nets' posteriors (`nets_posteriors`,
    which takes `options`). Returns one row per net and a last row for the fusion
    ("A + B"), errors as fractions."""
    posteriors_of, labels = nets_posteriors(nets_to_fuse, source, protocol=protocol,
                                            **options)
    named = [(net.name, p) for net, p in zip(nets_to_fuse, posteriors_of, strict=True)]
    named.append((" + ".join(net.name for net in nets_to_fuse),
                  np.mean(posteriors_of, axis=0)))
    return [FusionRow(name, protocol, top_k_error(p, labels, 1), top_k_error(p, labels, 5),
                      len(labels)) for name, p in named]


def fusion_table(rows: Sequence[FusionRow]) -> str:
    """The rows as a Markdown table shaped like the paper's Table 6."""
    lines = ["| ConvNet model(s) | protocol | top-1 error (%) | top-5 error (%) | images |",
             "|---|---|---|---|---|"]
    lines += [f"| {row.nets} | {row.protocol} | {100 * row.top1_error:.1f} | "
              f"{100 * row.top5_error:.1f} | {row.images} |" for row in rows]
    return "\n".join(lines)


def evaluate_net(
    net: nets.Net,
    source: str,
    *,
    protocols: Sequence[str] = ("dense",),
    test_scales: Sequence[int] | None = None,
    flip: bool = True,
    split: str = "validation",
    max_images: int | None = None,
    progress: bool = False,
) -> list[Result]:
    """`evaluate` for a net (`keras_vgg.nets`): with its preprocessing and, by default, its
    Q set (a run's: the paper's multi-scale set for its S). The source must label the net's
    classes in its order. An export is evaluated densely as it was exported
    (`evaluate_saved_model`): its Q and flip are in its graph."""
    if net.saved_model is not None:
        if set(protocols) != {"dense"} or test_scales:
            raise ValueError(f"{net.saved_model} is an export: it evaluates densely at the Q "
                             f"it was exported with ({net.test_scale}); drop the protocols "
                             "and test scales")
        net.check_labels(source, split=split)
        return [evaluate_saved_model(net.saved_model, source, split=split,
                                     max_images=max_images, progress=progress)]
    net.check_labels(source, split=split)
    return evaluate(net.build(), source, protocols=protocols,
                    test_scales=tuple(test_scales or net.test_scales), flip=flip,
                    preprocessing=net.preprocessing, split=split, max_images=max_images,
                    progress=progress)


def evaluate_saved_model(
    path: str, source: str, *, split: str = "validation", max_images: int | None = None,
    progress: bool = False,
) -> Result:
    """Evaluates an exported SavedModel (`keras_vgg.serving`) on raw decoded images: dense
    evaluation at the Q (and with the flip averaging) it was exported with.

    Returns a `Result` with protocol "dense (SavedModel)" (or "dense+flip (SavedModel)").
    """
    count = _image_count(source, split, max_images)
    options = serving.read_options(path)
    serve = tf.saved_model.load(path).signatures[serving.SIGNATURE_PIXELS]
    pixel_dtype = serve.structured_input_signature[1][serving.INPUT_PIXELS].dtype
    dataset = data.eval_dataset(source, view="original", split=split, with_ids=True,
                                max_pixels=options.max_pixels, max_images=max_images)
    start = time.perf_counter()
    posteriors, labels = _posteriors_per_image(
        lambda images: serve(**{serving.INPUT_PIXELS: tf.cast(images, pixel_dtype)})[
            "probabilities"].numpy(),
        [dataset], count=count, progress=progress)
    seconds = time.perf_counter() - start
    protocol = "dense+flip (SavedModel)" if options.flip else "dense (SavedModel)"
    return Result(protocol, (options.test_scale,), top_k_error(posteriors, labels, 1),
                  top_k_error(posteriors, labels, 5), len(labels), len(labels) / seconds)


def table(results: Sequence[Result]) -> str:
    """The results as a Markdown table shaped like the paper's Tables 3-5."""
    rows = ["| protocol | test scales Q | top-1 error (%) | top-5 error (%) | images | images/s |",
            "|---|---|---|---|---|---|"]
    for r in results:
        rows.append(f"| {r.protocol} | {','.join(map(str, r.test_scales))} | "
                    f"{100 * r.top1_error:.1f} | {100 * r.top5_error:.1f} | {r.images} | "
                    f"{r.images_per_second:.1f} |")
    return "\n".join(rows)

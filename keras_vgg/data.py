"""Datasets for training and evaluation (Sect. 3.1, 3.2): a source's records, seeded,
shuffled and sharded, through the image operations of `keras_vgg.image_ops` inside the
guard that skips and names bad files (`keras_vgg.guard`), then batched, colour-shifted and
preprocessed for the weights in use.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from keras_vgg import guard, imagenet, sources
from keras_vgg.image_ops import (
    CROP_SIZE,
    MAX_PIXELS,
    SCALE_JITTER,
    TEST_SCALE,
    colour_shift,
    decode_central_crop,
    decode_image,
    derived_seed,
    multi_crop,
    parse_crop_size,
    parse_scale,
    parse_test_crop_size,
    rescale_shorter_side,
    train_transform,
)
from keras_vgg.requires_tensorflow import tf, unconverted


def with_seeds(
    records: tf.data.Dataset, seed: int | None, epoch: tf.Variable | None
) -> tf.data.Dataset:
    """Adds `record["seed"]`, a stateless seed pair, different for every image and epoch:
    drawn anew each iteration, or, with `epoch`, `[seed, epoch * 2**32 + position]`."""
    if epoch is None:
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(
            2, drop_remainder=True)
        return tf.data.Dataset.zip(records, seeds).map(
            unconverted(lambda record, pair: {**record, "seed": pair}))

    @unconverted
    def keyed(position, record):
        stream = tf.cast(epoch.read_value(), tf.int64) * (1 << 32) + position
        return {**record, "seed": tf.stack([tf.constant(seed, tf.int64), stream])}

    return records.enumerate().map(keyed)


def preprocessed(images: tf.Tensor, mode: str) -> tf.Tensor:
    """`imagenet.preprocess_input(images, mode=mode)` as one 1x1 convolution with a bias
    (`imagenet.channel_affine`): `[h, w, 3]` or `[b, h, w, 3]` float32 RGB in [0, 255] ->
    the same shape. Keras' function stacks three channel slices and broadcasts the mean, a
    pass over the batch each; this reads and writes it once."""
    matrix, bias = imagenet.channel_affine(mode)
    batch = images[None] if images.shape.rank == 3 else images
    mapped = tf.nn.bias_add(
        tf.nn.conv2d(batch, tf.constant(matrix[None, None]), strides=1, padding="VALID"),
        tf.constant(bias))
    return mapped[0] if images.shape.rank == 3 else mapped


def _model_inputs(
    records: tf.data.Dataset,
    *,
    batch_size: int | None,
    preprocessing: str | None,
    with_ids: bool,
    colour: bool = False,
) -> tf.data.Dataset:
    """The guard's records as `(images, labels)` (or `(images, labels, ids)`) batches of
    `batch_size`, or one record per element when it is None; with `colour`, each image
    colour-shifted (from a seed per batch, derived from its first image's), then
    preprocessed for the weights (`preprocessed`, in an `imagenet.preprocess_input` mode;
    None: left as is)."""
    # The colour shift and preprocessing run once per batch, not once per image.
    dataset = records.batch(batch_size) if batch_size else records
    return dataset.map(unconverted(lambda record: _model_input(record, colour, preprocessing,
                                                              with_ids)),
                       num_parallel_calls=tf.data.AUTOTUNE)


# The pipelines' per-record functions are tf.functions of module scope, traced once per
# process for each set of settings (their Python arguments): a pipeline built again with
# the same settings, as every evaluation and training run builds one, reuses their graphs
# instead of tracing them anew, which was most of a pipeline's build (`keras_vgg.guard`'s
# do the same). tf.data calls them from its own functions: they run in the dataset's graph.
# Not the training crop: as a tf.function, its pipeline cannot start under
# MultiWorkerMirroredStrategy ("Haven't set up remote eager worker").
@tf.function(autograph=False, reduce_retracing=True)
def _model_input(record: dict, colour: bool, preprocessing: str | None, with_ids: bool
                 ) -> tuple[tf.Tensor, ...]:
    """A record (or batch) of the guard's as `_model_inputs` gives it."""
    image = record["image"]
    if colour:
        image = colour_shift(image, derived_seed(record["seed"][0], 2))
    if preprocessing:
        image = preprocessed(image, preprocessing)
    if with_ids:
        return image, record["label"], record["id"]
    return image, record["label"]


def prefetched(dataset: tf.data.Dataset, *, deterministic: bool = True) -> tf.data.Dataset:
    """The pipeline's last step: batches prepared ahead of the model, in order unless
    `deterministic` is False.

    tf.data's autotuning is off. With it on, a pipeline on one core sat idle 40% of the
    time in about one pass in four (0.6 CPU-seconds per second, at the same rate every
    time) whatever the algorithm or budgets; off, it never did, and ran faster (BENCHMARKS.md).
    The parallel maps then run min(16, cores) calls at once, and the prefetch buffer
    still grows as the model needs it."""
    options = tf.data.Options()
    options.deterministic = deterministic
    options.autotune.enabled = False
    return dataset.with_options(options).prefetch(tf.data.AUTOTUNE)


def _batch_size(global_batch_size: int, input_context) -> int:
    if global_batch_size < 1:
        raise ValueError(f"the batch size must be at least 1, got {global_batch_size}")
    if input_context is None:
        return global_batch_size
    return input_context.get_per_replica_batch_size(global_batch_size)


def train_dataset(
    source: str,
    *,
    global_batch_size: int,
    input_context: tf.distribute.InputContext | None = None,
    scale: int | str | Sequence[int] = SCALE_JITTER,
    crop_size: int | Sequence[int] = CROP_SIZE,
    preprocessing: str = "caffe",
    colour: bool = True,
    flip: bool = True,
    shuffle_buffer: int = 1024,
    seed: int | None = None,
    epoch: tf.Variable | None = None,
    with_ids: bool = False,
    data_service: str | None = None,
    job_name: str | None = None,
    deterministic: bool = True,
    record_transform: Callable[..., tf.Tensor | dict] | None = None,
) -> tf.data.Dataset:
    """One epoch of augmented training batches: `([b, crop_h, crop_w, 3] float32, [b] int32)`.

    `record_transform(record, *, scale, crop_size, flip)` replaces the crop of a record
    (`train_transform`); one returning `{"image", "label"}` also replaces the labels (box
    targets, `keras_vgg.localisation_data`).

    With `input_context` (from `strategy.distribute_datasets_from_function`) the source is
    sharded per input pipeline and `b` is the per-replica batch. With `data_service` (a
    `grpc://host:port` tf.data service dispatcher) the work runs on the service's workers,
    which split each epoch dynamically between them (each image once per epoch); the
    service does the sharding, so `input_context` then only sets the batch size.

    With `epoch` (an int64 variable the trainer sets at each epoch's start, see
    `keras_vgg.callbacks.EpochCounter`) and a `seed`, every random choice of an epoch is a
    pure function of `(seed, epoch)`: a run resumed at epoch k sees exactly the data an
    uninterrupted run sees. Not with `data_service` (a variable cannot be shipped).
    """
    if epoch is not None and (seed is None or data_service):
        raise ValueError("an epoch-keyed pipeline needs a seed and no data_service")
    scale = parse_scale(scale)
    crop = parse_crop_size(crop_size)
    batch_size = _batch_size(global_batch_size, input_context)
    if max(crop) > scale[0]:
        raise ValueError(
            f"crop_size {crop} is larger than the smallest training scale S={scale[0]}: the "
            "crop is taken from the image rescaled so its shorter side is S"
        )
    pipelines = 1 if input_context is None else input_context.num_input_pipelines
    if data_service and pipelines > 1 and not job_name:
        raise ValueError(
            f"data_service with {pipelines} input pipelines needs a shared `job_name`, or "
            "each pipeline would read the whole epoch"
        )
    if seed is not None and input_context is not None:
        seed += 7919 * input_context.input_pipeline_id  # other draws on each worker
    opened = sources.open_source(
        source, split="train", input_context=None if data_service else input_context,
        shuffle_files=True, seed=seed, epoch=epoch,
    )
    if opened.multi_label:
        raise ValueError(f"{source!r} is multi-label; training needs one class per image")
    records = opened.dataset
    if shuffle_buffer > 1:  # with `epoch`, the input order already changes every epoch
        records = records.shuffle(shuffle_buffer, seed=seed,
                                  reshuffle_each_iteration=epoch is None)
    if record_transform is None:
        def record_transform(record, **geometry):
            return train_transform(record["image"], record["seed"], **geometry)

    transformed = guard.map_skipping_undecodable(
        with_seeds(records, seed, epoch),
        lambda r: record_transform(r, scale=scale, crop_size=crop, flip=flip),
        records_can_fail=opened.streamed,
    )
    dataset = _model_inputs(transformed, batch_size=batch_size, preprocessing=preprocessing,
                            with_ids=with_ids, colour=colour)
    if data_service:
        dataset = dataset.apply(tf.data.experimental.service.distribute(
            processing_mode=tf.data.experimental.service.ShardingPolicy.DYNAMIC,
            service=data_service, job_name=job_name))
    return prefetched(dataset, deterministic=deterministic)


@tf.function(autograph=False, reduce_retracing=True)
def _test_view(contents: tf.Tensor, view: str, test_scale: int, crop: tuple[int, int],
               flip: bool) -> tf.Tensor:
    """An encoded image as `eval_dataset` presents it in `view` (see `_model_input`)."""
    if view == "original":
        return decode_image(contents)[None]
    if view == "center":
        return decode_central_crop(contents, test_scale, crop)
    return multi_crop(rescale_shorter_side(decode_image(contents), test_scale), crop, flip=flip)


# How `eval_dataset` presents each test image; the paper's protocols
# (`keras_vgg.evaluation.PROTOCOLS`) are built from these.
TEST_VIEWS = ("center", "multi_crop", "original")


def eval_dataset(
    source: str,
    *,
    view: str = "center",
    test_scale: int = TEST_SCALE,
    crop_size: int | Sequence[int] = CROP_SIZE,
    batch_size: int = 32,
    split: str = "validation",
    preprocessing: str = "caffe",
    flip: bool = False,
    input_context: tf.distribute.InputContext | None = None,
    with_ids: bool = False,
    max_pixels: int = MAX_PIXELS,
    max_images: int | None = None,
    sample_seed: int = 0,
) -> tf.data.Dataset:
    """Test-time images (Sect. 3.2), in source order, each exactly once (but those beyond
    the bounds, `max_pixels` and `MAX_ASPECT_RATIO`, and undecodable ones: see
    `keras_vgg.guard`); with `max_images`, a random sample of that many
    (`sources.sample`, the same for the same `sample_seed`).

    view:
      "center": rescale to shorter side Q, centre crop; batches `[b, crop_h, crop_w, 3]`
        with labels `[b]`.
      "multi_crop": rescale to Q, 5x5 grid of crops (and their mirrors with `flip`); one
        image per element, `[25 or 50, crop_h, crop_w, 3]`; label `[]`.
      "original": the decoded image as it is, `[1, h, w, 3]` uint8, no preprocessing (for
        the dense path, `keras_vgg.inference`, and an exported SavedModel, which rescale
        and preprocess inside); label `[]`.
    """
    if view not in TEST_VIEWS:
        raise ValueError(f"unknown view {view!r}; expected one of {TEST_VIEWS}")
    crop = parse_test_crop_size(crop_size, test_scale)
    batched = view == "center"
    batch_size = _batch_size(batch_size, input_context) if batched else None
    opened = sources.open_source(source, split=split, input_context=input_context)
    records = (opened.dataset if max_images is None
               else sources.sample(opened, max_images, seed=sample_seed))

    transformed = guard.map_skipping_undecodable(
        records, lambda record: _test_view(record["image"], view, test_scale, crop, flip),
        records_can_fail=opened.streamed, max_pixels=max_pixels)
    return prefetched(_model_inputs(
        transformed, batch_size=batch_size,
        preprocessing=None if view == "original" else preprocessing, with_ids=with_ids,
    ))

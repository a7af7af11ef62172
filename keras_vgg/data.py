"""tf.data pipelines: the paper's training augmentation (Sect. 3.1) and test-time
preprocessing (Sect. 3.2), decoding only the pixels that are used, skipping bad files loudly.

Training, per image: rescale isotropically so the shorter side is S (fixed, or uniform in
[S_min, S_max]), take a random crop, flip it at random, add AlexNet's PCA colour shift,
and apply the preprocessing of the weights in use. The crop window is computed in the
original image's coordinates and only that window is decoded (`decode_and_crop_jpeg`,
with libjpeg's DCT down-scaling for huge images), then resized to the crop size: the same
pixels as rescale-then-crop at a fraction of the cost. Non-JPEG files (PNG, GIF, BMP, and
JPEGs without an end marker) are decoded whole and cropped the same way.

Every image's cost is bounded before it is decoded: its size is read from its header, and
an image of more than `MAX_PIXELS` pixels, longer than `MAX_ASPECT_RATIO` times its width
(or the reverse), or a JPEG with too few bytes for the pixels it declares
(`MAX_JPEG_PIXELS_PER_BYTE`: a damaged or crafted header) is skipped, named with the
reason. A file that cannot be read or decoded is skipped too; each skip is printed to
stderr with its id (path) and a running count. All randomness is stateless and seeded per
image.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

from keras_vgg import imagenet, sources
from keras_vgg.configs import MULTI_CROP_GRID
from keras_vgg.requires_tensorflow import tf

# Sect. 3.1: training crop, and the scale-jittering range of S.
CROP_SIZE = 224
SCALE_JITTER = (256, 512)
# Sect. 3.1 / AlexNet: PCA colour augmentation on 0-255 RGB pixels.
PCA_EIGENVALUES = (0.2175, 0.0188, 0.0045)
PCA_EIGENVECTORS = (
    (-0.5675, 0.7192, 0.4009),
    (-0.5808, -0.0045, -0.8140),
    (-0.5836, -0.6948, 0.4203),
)
PCA_ALPHA_STDDEV = 0.1
# Sect. 3.2: dense evaluation scale for jittered training.
TEST_SCALE = 384
# The bounds on one image, read from its header before it is decoded (training, evaluation
# and serving): 64 megapixels decode to 192 MB, and an 8:1 image rescaled to Q=384 is
# 384 x 3072. libjpeg encodes a flat grey image in 1 byte per ~250 pixels (measured with
# Pillow at 4000 x 3000, baseline and progressive), so a JPEG declaring 4096 pixels per byte
# of file has no image data behind its header.
MAX_PIXELS = 64 * 1024 * 1024
MAX_ASPECT_RATIO = 8
MAX_JPEG_PIXELS_PER_BYTE = 4096
# libjpeg's DCT-domain down-scaling factors, used to keep huge images' memory bounded.
JPEG_RATIOS = (1, 2, 4, 8)
_JPEG_START = b"\xff\xd8\xff"  # SOI marker and the next marker's first byte
_JPEG_END = b"\xff\xd9"


def parse_scale(scale: int | str | Sequence[int]) -> tuple[int, int]:
    """`256`, `"256"`, `"256,512"` or `(256, 512)` -> `(S_min, S_max)` in pixels."""
    try:
        if isinstance(scale, str):
            scale = [int(part) for part in scale.split(",")]
        if isinstance(scale, int):
            scale = (scale, scale)
        scale = tuple(int(s) for s in scale)
    except ValueError as error:
        raise ValueError(f"scale must be S or 'S_min,S_max' in pixels, got {scale!r}") from error
    if len(scale) == 1:
        scale = scale * 2
    if len(scale) != 2 or not 0 < scale[0] <= scale[1]:
        raise ValueError(f"scale must be S or 'S_min,S_max' with 0 < S_min <= S_max, got {scale}")
    return scale


def parse_crop_size(crop_size: int | Sequence[int]) -> tuple[int, int]:
    """`224` or `(height, width)` -> `(height, width)` in pixels."""
    size = (crop_size, crop_size) if isinstance(crop_size, int) else tuple(crop_size)
    if len(size) != 2 or min(size) < 1:
        raise ValueError(f"crop_size must be a positive int or (height, width), got {crop_size}")
    return size


# --- Sampling and decoding ------------------------------------------------------------


def crop_window(
    image_shape: tf.Tensor,
    *,
    scale: tuple[int, int],
    crop_size: tuple[int, int],
    seed: tf.Tensor,
) -> tf.Tensor:
    """The region of the original image that becomes the crop, `[y, x, height, width]` int32.

    S is drawn uniformly from `scale` (inclusive); at that scale the crop is `crop_size`, so
    in original pixels it is `crop_size * min(h, w) / S` (clipped to the image: an image
    smaller than the crop is upscaled). Its position is uniform over the image.

    Written with few, vectorised ops: in a tf.data map each op costs microseconds.
    """
    image_hw = tf.cast(image_shape[:2], tf.float32)
    draws = tf.random.stateless_uniform([3], seed)  # S, y, x
    s = tf.floor(scale[0] + draws[0] * (scale[1] - scale[0] + 1))
    side = tf.clip_by_value(
        tf.round(tf.constant(crop_size, tf.float32) * (tf.reduce_min(image_hw) / s)),
        1.0, image_hw,
    )
    offset = tf.floor(draws[1:] * (image_hw - side + 1.0))  # draws < 1: offset <= hw - side
    return tf.cast(tf.concat([offset, side], axis=0), tf.int32)


def _decode_huge_jpeg_window(contents, window, crop_size) -> tf.Tensor:
    """A window of four or more crop sizes (a huge image), decoded at the coarsest DCT scale
    (1/2, 1/4, 1/8) that keeps it at least twice the crop: bounded memory. Its offset snaps
    to that scale's pixel grid."""
    y, x, height, width = tf.unstack(window)

    def decode_at(ratio):
        def decode():
            scaled = tf.stack([y // ratio, x // ratio, tf.maximum(height // ratio, 1),
                               tf.maximum(width // ratio, 1)])
            return tf.io.decode_and_crop_jpeg(contents, scaled, channels=3, ratio=ratio)

        return decode

    index = tf.constant(0)
    for position, ratio in enumerate(JPEG_RATIOS):
        fits = tf.logical_and(height // ratio >= 2 * crop_size[0],
                              width // ratio >= 2 * crop_size[1])
        index = tf.where(fits, position, index)
    return tf.switch_case(index, [decode_at(ratio) for ratio in JPEG_RATIOS])


def _unsigned(header: tf.Tensor, start: int, length: int, *, big_endian: bool) -> tf.Tensor:
    digits = header[start : start + length]
    digits = digits if big_endian else tf.reverse(digits, [0])
    return tf.reduce_sum(digits * 256 ** tf.range(length - 1, -1, -1, dtype=tf.int64))


def declared_size(contents: tf.Tensor) -> tf.Tensor:
    """`[height, width]` int64 of an encoded image, read from its header without decoding:
    JPEG, PNG, GIF, BMP and WebP; `[-1, -1]` for other formats (JPEG XL) and non-images.
    Raises InvalidArgument for a JPEG whose header is broken."""
    length = 32  # every header field read below lies in the first 32 bytes
    padded = tf.strings.substr(
        tf.strings.join([tf.strings.substr(contents, 0, length), b"\0" * length]), 0, length)
    header = tf.cast(tf.io.decode_raw(padded, tf.uint8), tf.int64)

    def at(start, length, big_endian=False):
        return _unsigned(header, start, length, big_endian=big_endian)

    def starts(magic: bytes, offset: int = 0):
        return tf.equal(tf.strings.substr(padded, offset, len(magic)), magic)

    webp = tf.logical_and(starts(b"RIFF"), starts(b"WEBP", 8))
    sizes = [  # (condition, [height, width]), first match wins
        (starts(_JPEG_START), lambda: tf.cast(tf.image.extract_jpeg_shape(contents)[:2],
                                              tf.int64)),
        (starts(b"\x89PNG"), lambda: tf.stack([at(20, 4, True), at(16, 4, True)])),
        (starts(b"GIF8"), lambda: tf.stack([at(8, 2), at(6, 2)])),
        (starts(b"BM"), lambda: tf.abs(tf.stack([  # int32; negative height: top-down rows
            (at(22, 4) + 2**31) % 2**32 - 2**31, (at(18, 4) + 2**31) % 2**32 - 2**31]))),
        (tf.logical_and(webp, starts(b"VP8X", 12)),
         lambda: tf.stack([at(27, 3), at(24, 3)]) + 1),
        (tf.logical_and(webp, starts(b"VP8L", 12)),  # 14-bit width-1, height-1 from byte 21
         lambda: tf.stack([at(21, 4) // 2**14 % 2**14, at(21, 4) % 2**14]) + 1),
        (tf.logical_and(webp, starts(b"VP8 ", 12)),
         lambda: tf.stack([at(28, 2) % 2**14, at(26, 2) % 2**14])),
    ]
    size = tf.constant([-1, -1], tf.int64)
    for condition, read in reversed(sizes):
        size = tf.cond(condition, read, lambda size=size: size)
    return size


def image_problem(contents: tf.Tensor, max_pixels: int = MAX_PIXELS) -> tf.Tensor:
    """Why an encoded image is beyond the bounds, as a scalar tf.string; "" when it is within
    them (or its size is not in its header). See `MAX_PIXELS`, `MAX_ASPECT_RATIO` and
    `MAX_JPEG_PIXELS_PER_BYTE`. Raises InvalidArgument for a JPEG whose header is broken."""
    height, width = tf.unstack(declared_size(contents))
    pixels = height * width
    size = tf.strings.format("is {}x{} pixels", (width, height))
    is_jpeg = tf.equal(tf.strings.substr(contents, 0, 3), _JPEG_START)
    problems = [
        (tf.equal(pixels, 0), "declares no pixels"),
        (pixels > max_pixels, tf.strings.join([size, f", above the bound of {max_pixels}"])),
        (tf.maximum(height, width) > MAX_ASPECT_RATIO * tf.minimum(height, width),
         tf.strings.join([size, f", beyond the {MAX_ASPECT_RATIO}:1 aspect-ratio bound"])),
        (tf.logical_and(is_jpeg, pixels > MAX_JPEG_PIXELS_PER_BYTE * tf.cast(
            tf.strings.length(contents), tf.int64)),
         tf.strings.format("declares {}x{} pixels in only {} bytes: its image data is missing",
                           (width, height, tf.strings.length(contents)))),
    ]
    problem = tf.constant("")
    for condition, message in reversed(problems):
        problem = tf.where(tf.logical_and(height >= 0, condition), message, problem)
    return problem


def decode_image(contents: tf.Tensor) -> tf.Tensor:
    """A whole image of any format `decode_image` reads: `[h, w, 3]` uint8."""
    image = tf.io.decode_image(contents, channels=3, expand_animations=False)
    image.set_shape([None, None, 3])
    return image


def decode_resized_window(
    contents: tf.Tensor,
    window_of: Callable[[tf.Tensor], tf.Tensor],
    size: tuple[int, int] = (CROP_SIZE, CROP_SIZE),
) -> tf.Tensor:
    """Decodes the part `window_of(image_shape)` of an encoded image and resizes it to
    `size` (bilinear, half-pixel centres): `[size_h, size_w, 3]` float32 in [0, 255].

    JPEGs (including CMYK and grayscale ones) take the fast path, which decodes only the
    window (at a coarser DCT scale when it is huge), so it has a bounded size and is cast
    to float32 before resizing: the same pixels as resizing uint8, from a kernel that reads
    float32 faster (`benchmarks.pipeline` measures the same cast on the naive path).
    Anything else `tf.io.decode_image` reads (PNG, GIF, BMP, a PNG named .JPEG, a JPEG
    without its end marker) is decoded whole, cropped and resized from uint8, with no
    float32 copy of a window whose size nothing bounds.
    """
    complete_jpeg = tf.equal(
        tf.strings.join([tf.strings.substr(contents, 0, 3), tf.strings.substr(contents, -2, 2)]),
        _JPEG_START + _JPEG_END,
    )

    def fast():
        window = window_of(tf.image.extract_jpeg_shape(contents))
        decoded = tf.cond(
            tf.reduce_any(window[2:] >= 4 * tf.constant(size)),
            lambda: _decode_huge_jpeg_window(contents, window, size),
            lambda: tf.io.decode_and_crop_jpeg(contents, window, channels=3),
        )
        return tf.image.resize(tf.cast(decoded, tf.float32), size, method="bilinear")

    def whole():
        image = decode_image(contents)
        y, x, height, width = tf.unstack(window_of(tf.shape(image)))
        return tf.image.resize(image[y : y + height, x : x + width], size, method="bilinear")

    return tf.cond(complete_jpeg, fast, whole)


# --- Augmentation and evaluation transforms ---------------------------------------------


def colour_shift(images: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """AlexNet's PCA lighting noise: adds `eigvecs @ (alpha * eigvals) * 255` to every pixel
    of an image, alpha ~ N(0, 0.1) per channel, drawn anew for each image of a batch.

    `images`: `[height, width, 3]` or `[batch, height, width, 3]`, float RGB in [0, 255].
    """
    single = images.shape.rank == 3
    batch = images[None] if single else images
    shape = tf.shape(batch)
    alpha = tf.random.stateless_normal([shape[0], 3], seed, stddev=PCA_ALPHA_STDDEV)
    shift = 255.0 * tf.linalg.matmul(
        alpha * tf.constant(PCA_EIGENVALUES), tf.constant(PCA_EIGENVECTORS), transpose_b=True
    )
    # Adding a [width * 3] row vectorises; broadcasting a [3] vector over pixels does not.
    rows = tf.reshape(batch, [shape[0], shape[1], -1]) + tf.tile(shift, [1, shape[2]])[:, None]
    shifted = tf.reshape(rows, shape)
    return shifted[0] if single else shifted


def rescale_shorter_side(image: tf.Tensor, size: int | tf.Tensor) -> tf.Tensor:
    """Isotropic rescale so that min(height, width) == size: `[h, w, 3]` or
    `[batch, h, w, 3]` -> float32."""
    shape = tf.cast(tf.shape(image)[-3:-1], tf.float32)
    factor = tf.cast(size, tf.float32) / tf.reduce_min(shape)
    new_shape = tf.maximum(tf.cast(tf.round(shape * factor), tf.int32), 1)
    return tf.image.resize(image, new_shape, method="bilinear")


def central_crop(image: tf.Tensor, crop_size: tuple[int, int]) -> tf.Tensor:
    """The centred `crop_size` window of an image at least that large."""
    shape = tf.shape(image)
    y = (shape[0] - crop_size[0]) // 2
    x = (shape[1] - crop_size[1]) // 2
    return image[y : y + crop_size[0], x : x + crop_size[1]]


def multi_crop(
    image: tf.Tensor,
    crop_size: tuple[int, int] = (CROP_SIZE, CROP_SIZE),
    *,
    grid: int = MULTI_CROP_GRID,
    flip: bool = True,
) -> tf.Tensor:
    """Sect. 3.2's crops of an image already rescaled to Q: a `grid` x `grid` lattice of
    `crop_size` windows spanning the image, and their mirror images.

    Returns `[grid * grid * (2 if flip else 1), crop_h, crop_w, 3]`, row-major, flips last.
    """
    shape = tf.shape(image)

    def offsets(image_side, crop_side):
        span = tf.cast(image_side - crop_side, tf.float32)
        return tf.cast(tf.round(tf.linspace(0.0, span, grid)), tf.int32)

    ys, xs = offsets(shape[0], crop_size[0]), offsets(shape[1], crop_size[1])
    boxes = tf.reshape(tf.stack(tf.meshgrid(ys, xs, indexing="ij"), axis=-1), [-1, 2])
    crops = tf.map_fn(
        lambda yx: tf.image.crop_to_bounding_box(image, yx[0], yx[1], *crop_size),
        boxes,
        fn_output_signature=tf.TensorSpec([*crop_size, 3], image.dtype),
    )
    if flip:
        crops = tf.concat([crops, tf.image.flip_left_right(crops)], axis=0)
    return crops


def derived_seed(seed: tf.Tensor, stream: int) -> tf.Tensor:
    """A stateless int64 seed `[2]` for one random decision, `stream` >= 1: `[a 64-bit
    Philox draw from seed, stream]`. Images whose seeds differ by one (the epoch-keyed
    `[seed, epoch * 2**32 + position]`) thus get unrelated streams; a seed plus the stream
    number would be the next image's own seed."""
    return tf.random.experimental.stateless_fold_in(seed, tf.constant(stream, tf.int64))


def train_transform(
    contents: tf.Tensor,
    seed: tf.Tensor,
    *,
    scale: tuple[int, int] = SCALE_JITTER,
    crop_size: tuple[int, int] = (CROP_SIZE, CROP_SIZE),
    flip: bool = True,
) -> tf.Tensor:
    """Encoded image -> one training crop, `[crop_h, crop_w, 3]` float32 RGB in [0, 255]:
    rescale to S, random crop, random flip. The colour shift and the weights'
    preprocessing follow per batch (`colour_shift`, `preprocess_input`)."""
    image = decode_resized_window(
        contents,
        lambda shape: crop_window(shape, scale=scale, crop_size=crop_size, seed=seed),
        crop_size,
    )
    if flip:
        image = tf.cond(is_mirrored(seed), lambda: tf.reverse(image, [1]), lambda: image)
    return image


def is_mirrored(seed: tf.Tensor) -> tf.Tensor:
    """Whether the training crop of the image with `seed` is flipped (boolean scalar)."""
    return tf.random.stateless_uniform([], derived_seed(seed, 1)) < 0.5


# --- Datasets ------------------------------------------------------------------------------


# Records go through `transform` in groups; each group is a small tf.data pipeline whose
# failures `ignore_errors` drops, and whose survivors are compared with the group's records.
GUARD_GROUP_SIZE = 16


def map_skipping_undecodable(
    records: tf.data.Dataset,
    transform: Callable[[dict], tf.Tensor],
    *,
    max_pixels: int = MAX_PIXELS,
    group_size: int = GUARD_GROUP_SIZE,
    deterministic: bool = True,
) -> tf.data.Dataset:
    """`record["image"] = transform(record)` for each record (sources' records, whose
    encoded image `sources.encoded_image` reads; a transform returning a dict sets those
    fields instead), in groups: each element is a batch of the
    1 to `group_size` records of a group that survived, in order (re-batch it with
    `Dataset.rebatch`, or `unbatch` it). Records are dropped, each drop printed to stderr
    with the record's id and the number dropped so far by this iterator, when
    - the image is beyond the bounds (`image_problem`): the reason is printed, and the
      image is not decoded;
    - reading or transforming it fails (a missing, corrupt, truncated or non-image file).

    tf.data has no try/except, and `ignore_errors` drops failures without saying which.
    Running it on groups of `group_size` records and seeing which of each group's positions
    survived names the dropped ones at a cost per group, not per record (ids need not be
    unique). Transforms whose outputs differ in shape need `group_size=1`.
    """

    def bounded(record):
        contents = sources.encoded_image(record)
        problem = image_problem(contents, max_pixels)
        # An image beyond the bounds is replaced by a 1x1 one, so that the transform's
        # output keeps its shape, and is dropped after the group.
        contents = tf.cond(tf.equal(problem, ""), lambda: contents,
                           lambda: tf.io.encode_png(tf.zeros([1, 1, 3], tf.uint8)))
        outputs = transform({**record, "image": contents})
        fields = outputs if isinstance(outputs, dict) else {"image": outputs}
        return {**record, **fields, "problem": problem}

    def run_group(group):
        slots = tf.range(tf.size(group["id"]))
        done = (tf.data.Dataset.from_tensor_slices((group, slots))
                .map(lambda record, slot: (bounded(record), slot))
                .ignore_errors())
        empty = tf.nest.map_structure(
            lambda spec: tf.zeros([0] + [0 if d is None else d for d in spec.shape], spec.dtype),
            done.element_spec,
        )
        survivors = done.batch(group_size).concatenate(tf.data.Dataset.from_tensors(empty))
        return survivors.take(1).map(lambda batch, kept: (batch, kept, group["id"]))

    def account(dropped, group):
        batch, kept, group_ids = group
        positions = tf.range(tf.size(group_ids))
        survived = tf.reduce_any(tf.equal(positions[:, None], kept[None, :]), axis=1)
        failed = tf.boolean_mask(group_ids, tf.logical_not(survived))
        problems = batch.pop("problem")
        beyond_bounds = tf.not_equal(problems, "")
        beyond = tf.strings.join([tf.boolean_mask(batch["id"], beyond_bounds),
                                  tf.boolean_mask(problems, beyond_bounds)], separator=": ")
        dropped_before = dropped
        dropped += tf.cast(tf.size(failed) + tf.size(beyond), tf.int64)

        def report(message, ids, count):
            return tf.cond(tf.size(ids) > 0, lambda: tf.print(
                f"keras_vgg.data: skipped {message}", ids,
                tf.strings.format("({} skipped so far)", count),
                output_stream=sys.stderr, summarize=-1), tf.no_op)

        reports = [
            report("image(s) beyond the bounds", beyond,
                   dropped_before + tf.cast(tf.size(beyond), tf.int64)),
            report("unreadable or undecodable file(s)", failed, dropped),
        ]
        with tf.control_dependencies(reports):
            kept_batch = tf.nest.map_structure(
                lambda tensor: tf.boolean_mask(tensor, tf.logical_not(beyond_bounds)), batch)
            return dropped, kept_batch

    return (
        records.batch(group_size)
        .interleave(
            run_group, cycle_length=tf.data.AUTOTUNE, num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=deterministic,
        )
        .scan(tf.constant(0, tf.int64), account)
        .filter(lambda batch: tf.size(batch["id"]) > 0)  # a group that all failed
    )


def with_seeds(
    records: tf.data.Dataset, seed: int | None, epoch: tf.Variable | None
) -> tf.data.Dataset:
    """Adds `record["seed"]`, a stateless seed pair, different for every image and epoch:
    drawn anew each iteration, or, with `epoch`, `[seed, epoch * 2**32 + position]`."""
    if epoch is None:
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(
            2, drop_remainder=True)
        return tf.data.Dataset.zip(records, seeds).map(
            lambda record, pair: {**record, "seed": pair})

    def keyed(position, record):
        stream = tf.cast(epoch.read_value(), tf.int64) * (1 << 32) + position
        return {**record, "seed": tf.stack([tf.constant(seed, tf.int64), stream])}

    return records.enumerate().map(keyed)


def _finish(
    groups: tf.data.Dataset,
    *,
    batch_size: int | None,
    preprocessing: str | None,
    with_ids: bool,
    data_service: str | None,
    job_name: str | None,
    deterministic: bool,
    colour: bool = False,
) -> tf.data.Dataset:
    def output(record):
        image = record["image"]
        if colour:  # one seed per batch, derived from its first image's
            image = colour_shift(image, derived_seed(record["seed"][0], 2))
        if preprocessing:
            image = imagenet.preprocess_input(image, mode=preprocessing)
        if with_ids:
            return image, record["label"], record["id"]
        return image, record["label"]

    # The guard's groups become batches without copying each image out and back in.
    dataset = groups.rebatch(batch_size) if batch_size else groups.unbatch()
    # Colour shift and preprocessing run once per batch: fewer ops per image than per record.
    dataset = dataset.map(output, num_parallel_calls=tf.data.AUTOTUNE)
    if data_service:
        dataset = dataset.apply(
            tf.data.experimental.service.distribute(
                processing_mode=tf.data.experimental.service.ShardingPolicy.DYNAMIC,
                service=data_service,
                job_name=job_name,
            )
        )
    options = tf.data.Options()
    options.deterministic = deterministic
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

    records = map_skipping_undecodable(
        with_seeds(records, seed, epoch),
        lambda r: record_transform(r, scale=scale, crop_size=crop, flip=flip),
        deterministic=deterministic,
    )
    return _finish(
        records, batch_size=batch_size,
        preprocessing=preprocessing, with_ids=with_ids, data_service=data_service,
        job_name=job_name, deterministic=deterministic, colour=colour,
    )


EVAL_PROTOCOLS = ("center", "dense", "multi_crop", "original")


def eval_dataset(
    source: str,
    *,
    protocol: str = "center",
    test_scale: int = TEST_SCALE,
    crop_size: int | Sequence[int] = CROP_SIZE,
    batch_size: int = 32,
    split: str = "validation",
    preprocessing: str = "caffe",
    flip: bool = False,
    input_context: tf.distribute.InputContext | None = None,
    with_ids: bool = False,
    max_pixels: int = MAX_PIXELS,
) -> tf.data.Dataset:
    """Test-time images (Sect. 3.2), in source order, each exactly once (but those beyond
    the bounds, `max_pixels` and `MAX_ASPECT_RATIO`, and undecodable ones: see
    `map_skipping_undecodable`).

    protocol:
      "center": rescale to shorter side Q, centre crop; batches `[b, crop_h, crop_w, 3]`
        with labels `[b]`.
      "dense": rescale to Q, no crop; one image per element, `[1, H, W, 3]` (sizes
        differ), or `[2, H, W, 3]` with `flip` (the image and its mirror); label `[]`.
      "multi_crop": rescale to Q, 5x5 grid of crops (and their mirrors with `flip`); one
        image per element, `[25 or 50, crop_h, crop_w, 3]`; label `[]`.
      "original": the decoded image as it is, `[1, h, w, 3]` uint8, no preprocessing (for
        an exported SavedModel, which rescales and preprocesses inside); label `[]`.
    """
    if protocol not in EVAL_PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; expected one of {EVAL_PROTOCOLS}")
    crop = parse_crop_size(crop_size)
    if max(crop) > test_scale:  # the shorter side of the rescaled image is Q
        raise ValueError(f"crop_size {crop} is larger than the test scale Q={test_scale}")
    batched = protocol == "center"
    batch_size = _batch_size(batch_size, input_context) if batched else None
    records = sources.open_source(source, split=split, input_context=input_context).dataset

    def transform(record):
        if protocol == "original":
            return decode_image(record["image"])[None]
        image = rescale_shorter_side(decode_image(record["image"]), test_scale)
        if protocol == "center":
            image = central_crop(image, crop)
            image.set_shape([*crop, 3])
            return image
        if protocol == "multi_crop":
            return multi_crop(image, crop, flip=flip)
        return tf.stack([image, tf.image.flip_left_right(image)]) if flip else image[None]

    records = map_skipping_undecodable(
        records, transform, max_pixels=max_pixels,
        group_size=GUARD_GROUP_SIZE if batched else 1,
    )
    return _finish(
        records,
        batch_size=batch_size,
        preprocessing=None if protocol == "original" else preprocessing, with_ids=with_ids,
        data_service=None, job_name=None,
        deterministic=True,
    )

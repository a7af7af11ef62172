"""Image operations of the paper's input pipeline, each a pure function of tensors: the
training augmentation (Sect. 3.1), the test-time rescaling and crops (Sect. 3.2), and the
bounds on an encoded image read from its header.

Training, per image: rescale isotropically so the shorter side is S (fixed, or uniform in
[S_min, S_max]), take a random crop, flip it at random, add AlexNet's PCA colour shift.
The crop window is computed in the original image's coordinates and only that window is
decoded (`decode_and_crop_jpeg`, with libjpeg's DCT down-scaling for huge images), then
resized to the crop size: the same pixels as rescale-then-crop at a fraction of the cost.
Non-JPEG files (PNG, GIF, BMP, and JPEGs without an end marker) are decoded whole and
cropped the same way.

An image's cost is bounded before it is decoded: its size is read from its header
(`declared_size`), and `image_problem` says why one is beyond the bounds (`MAX_PIXELS`,
`MAX_ASPECT_RATIO`, `MAX_JPEG_PIXELS_PER_BYTE`). All randomness is stateless: every draw
is a function of the image's seed (`derived_seed`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from keras_vgg.configs import DEFAULT_INPUT_SIZE, MULTI_CROP_GRID
from keras_vgg.requires_tensorflow import tf

# Sect. 3.1: training crop (the networks' input size), and the scale-jittering range of S.
CROP_SIZE = DEFAULT_INPUT_SIZE
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


def parse_test_crop_size(crop_size: int | Sequence[int], test_scale: int) -> tuple[int, int]:
    """`parse_crop_size`, for a crop taken from an image rescaled to shorter side Q =
    `test_scale`: ValueError when the crop does not fit."""
    crop = parse_crop_size(crop_size)
    if max(crop) > test_scale:
        raise ValueError(f"crop_size {crop} is larger than the test scale Q={test_scale}")
    return crop


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


# The header fields `declared_size` reads, each an unsigned integer of `length` bytes at
# `start`: (name, start, length, big-endian).
_HEADER_FIELDS = (
    ("png_height", 20, 4, True), ("png_width", 16, 4, True),
    ("gif_height", 8, 2, False), ("gif_width", 6, 2, False),
    ("bmp_height", 22, 4, False), ("bmp_width", 18, 4, False),  # int32: negative is top-down
    ("vp8x_height", 27, 3, False), ("vp8x_width", 24, 3, False),  # minus 1
    ("vp8l_size", 21, 4, False),  # 14-bit width - 1, then 14-bit height - 1
    ("vp8_height", 28, 2, False), ("vp8_width", 26, 2, False),  # 14 bits
)
_HEADER_LENGTH = 32  # every field and magic number lies in the first 32 bytes
IMAGE_FORMATS = "JPEG, PNG, GIF, BMP or WebP"
# Format signatures, in the order of `declared_size`'s candidates: (offset, bytes) pairs.
_SIGNATURES = (
    ((0, _JPEG_START),),
    ((0, b"\x89PNG"),),
    ((0, b"GIF8"),),
    ((0, b"BM"),),
    ((0, b"RIFF"), (8, b"WEBPVP8X")),
    ((0, b"RIFF"), (8, b"WEBPVP8L")),
    ((0, b"RIFF"), (8, b"WEBPVP8 ")),
)


def _header_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The byte weights of `_HEADER_FIELDS` `[32, fields]`, and each signature's checked
    bytes and their values `[signatures, 32]`."""
    weights = np.zeros([_HEADER_LENGTH, len(_HEADER_FIELDS)], np.int64)
    for column, (_, start, length, big_endian) in enumerate(_HEADER_FIELDS):
        powers = 256 ** np.arange(length, dtype=np.int64)
        weights[start : start + length, column] = powers[::-1] if big_endian else powers
    checked = np.zeros([len(_SIGNATURES), _HEADER_LENGTH], bool)
    expected = np.zeros([len(_SIGNATURES), _HEADER_LENGTH], np.int64)
    for row, parts in enumerate(_SIGNATURES):
        for offset, magic in parts:
            checked[row, offset : offset + len(magic)] = True
            expected[row, offset : offset + len(magic)] = list(magic)
    return weights, checked, expected


_FIELD_WEIGHTS, _SIGNATURE_BYTES, _SIGNATURE_VALUES = _header_tables()
# The headers of a one-pixel JPEG (start, frame, scan, end markers): read in place of
# anything else by the JPEG header reader, which runs on every input.
_ONE_PIXEL_JPEG_HEADER = bytes.fromhex(
    "ffd8" "ffc0001108000100010301110002110003110" "0" "ffda000c03010002110311003f00" "ffd9")
# A one-pixel black PNG: decoded in place of an image that must not be (the guard).
ONE_PIXEL_PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02\x00\x00\x00"
    b"\x90wS\xde\x00\x00\x00\x0cIDAT\x08\x99c```\x00\x00\x00\x04\x00\x01\xa3\n\x15\xe3\x00\x00"
    b"\x00\x00IEND\xaeB`\x82")


def _header(contents: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """The first `_HEADER_LENGTH` bytes `[32]` int64 (zero-padded), and which of
    `_SIGNATURES` they match `[signatures]` bool."""
    padded = tf.strings.substr(
        tf.strings.join([tf.strings.substr(contents, 0, _HEADER_LENGTH),
                         b"\0" * _HEADER_LENGTH]), 0, _HEADER_LENGTH)
    header = tf.cast(tf.io.decode_raw(padded, tf.uint8), tf.int64)
    matches = tf.reduce_all(
        tf.logical_or(tf.equal(header, _SIGNATURE_VALUES), ~_SIGNATURE_BYTES), axis=1)
    return header, matches


def _starts_as_jpeg(contents: tf.Tensor) -> tf.Tensor:
    """Whether encoded bytes start with a JPEG's start marker (scalar bool)."""
    return tf.equal(tf.strings.substr(contents, 0, len(_JPEG_START)), _JPEG_START)


def _is_complete_jpeg(contents: tf.Tensor) -> tf.Tensor:
    """Whether encoded bytes start and end as a JPEG does (scalar bool): what libjpeg's
    window decoding needs."""
    return tf.equal(
        tf.strings.join([tf.strings.substr(contents, 0, len(_JPEG_START)),
                         tf.strings.substr(contents, -len(_JPEG_END), len(_JPEG_END))]),
        _JPEG_START + _JPEG_END)


def is_image_format(contents: tf.Tensor) -> tf.Tensor:
    """Whether encoded bytes start as one of the formats the bounds read, `IMAGE_FORMATS`
    (scalar bool)."""
    return tf.reduce_any(_header(contents)[1])


def declared_size(contents: tf.Tensor) -> tf.Tensor:
    """`[height, width]` int64 of an encoded image, read from its header without decoding:
    JPEG, PNG, GIF, BMP and WebP; `[-1, -1]` for other formats (JPEG XL) and non-images.
    Raises InvalidArgument for a JPEG whose header is broken.

    A JPEG's is read by its own parser; the other formats' fields are all read from the
    first bytes, and one is selected, without a branch per format.
    """
    return tf.cond(
        _starts_as_jpeg(contents),
        lambda: tf.cast(tf.image.extract_jpeg_shape(contents)[:2], tf.int64),
        lambda: _declared_size_not_jpeg(contents))


def _declared_size_not_jpeg(contents: tf.Tensor) -> tf.Tensor:
    """`declared_size` of anything but a JPEG."""
    header, matches = _header(contents)
    fields = dict(zip(
        (name for name, *_ in _HEADER_FIELDS),
        # A product and a sum, not a matmul: a [32] x [32, fields] matmul dispatches to
        # a kernel whose set-up costs several times the JPEG header parse.
        tf.unstack(tf.reduce_sum(header[:, None] * _FIELD_WEIGHTS, axis=0)),
        strict=True,
    ))

    def int32(value):
        return tf.abs((value + 2**31) % 2**32 - 2**31)

    candidates = tf.stack([
        tf.constant([-1, -1], tf.int64),  # a JPEG is not read here
        tf.stack([fields["png_height"], fields["png_width"]]),
        tf.stack([fields["gif_height"], fields["gif_width"]]),
        tf.stack([int32(fields["bmp_height"]), int32(fields["bmp_width"])]),
        tf.stack([fields["vp8x_height"], fields["vp8x_width"]]) + 1,
        tf.stack([fields["vp8l_size"] // 2**14 % 2**14, fields["vp8l_size"] % 2**14]) + 1,
        tf.stack([fields["vp8_height"], fields["vp8_width"]]) % 2**14,
        tf.constant([-1, -1], tf.int64),
    ])
    first_match = tf.argmax(tf.concat([tf.cast(matches, tf.int32), [1]], axis=0))
    return candidates[first_match]


def image_problem(contents: tf.Tensor, max_pixels: int = MAX_PIXELS) -> tf.Tensor:
    """Why an encoded image is beyond the bounds, as a scalar tf.string; "" when it is within
    them (or its size is not in its header). See `MAX_PIXELS`, `MAX_ASPECT_RATIO` and
    `MAX_JPEG_PIXELS_PER_BYTE`. Raises InvalidArgument for a JPEG whose header is broken.

    The message is formatted only for an image beyond the bounds: on every other image the
    check is a few integer comparisons."""
    height, width = tf.unstack(declared_size(contents))
    pixels = height * width
    length = tf.cast(tf.strings.length(contents), tf.int64)
    is_jpeg = _starts_as_jpeg(contents)
    violated = tf.logical_and(height >= 0, tf.stack([
        tf.equal(pixels, 0),
        pixels > max_pixels,
        tf.maximum(height, width) > MAX_ASPECT_RATIO * tf.minimum(height, width),
        tf.logical_and(is_jpeg, pixels > MAX_JPEG_PIXELS_PER_BYTE * length),
    ]))

    def message():
        size = tf.strings.format("is {}x{} pixels", (width, height))
        messages = tf.stack([
            "declares no pixels",
            tf.strings.join([size, f", above the bound of {max_pixels}"]),
            tf.strings.join([size, f", beyond the {MAX_ASPECT_RATIO}:1 aspect-ratio bound"]),
            tf.strings.format("declares {}x{} pixels in only {} bytes: its image data is "
                              "missing", (width, height, length)),
        ])
        return messages[tf.argmax(tf.cast(violated, tf.int32))]  # the first one violated

    return tf.cond(tf.reduce_any(violated), message, lambda: tf.constant(""))


def decode_image(contents: tf.Tensor) -> tf.Tensor:
    """A whole image of any format `decode_image` reads: `[h, w, 3]` uint8."""
    image = tf.io.decode_image(contents, channels=3, expand_animations=False)
    image.set_shape([None, None, 3])
    return image


def decode_resized_window(
    contents: tf.Tensor,
    window_of: Callable[[tf.Tensor], tf.Tensor],
    size: tuple[int, int] = (CROP_SIZE, CROP_SIZE),
) -> tuple[tf.Tensor, tf.Tensor]:
    """Decodes the part `window_of(image_shape)` of an encoded image and resizes it to
    `size` (bilinear, half-pixel centres): `([size_h, size_w, 3] float32 in [0, 255],
    the window [y, x, height, width] int32 in the image's pixels)`.

    JPEGs (including CMYK and grayscale ones) take the fast path, which decodes only the
    window, so it has a bounded size and is cast to float32 before resizing: the same
    pixels as resizing uint8, from a kernel that reads float32 faster. A window of four or
    more times `size` (a huge image) is decoded at the coarsest DCT scale (1/2, 1/4, 1/8)
    that keeps it at least twice `size`, its offset snapped to that scale's pixel grid:
    bounded memory, and a fraction of the decoding.
    Anything else `tf.io.decode_image` reads (PNG, GIF, BMP, a PNG named .JPEG, a JPEG
    without its end marker) is decoded whole, cropped and resized from uint8, with no
    float32 copy of a window whose size nothing bounds.

    The common case, a JPEG window under four times `size`, takes one light branch (decode
    and cast) and is resized after it; the others resize within their branch, and the
    final resize, to the same size, leaves their pixels as they are. In a tf.data map a
    branch costs every record, taken or not: with the resize inside the common branch, or
    the DCT scales and the whole decode as branches around it, train_dataset ran 2-4%
    slower on one core, and with no branch at all (JPEGs alone) 10% faster.
    """
    complete_jpeg = _is_complete_jpeg(contents)
    window = window_of(tf.image.extract_jpeg_shape(
        tf.where(complete_jpeg, contents, _ONE_PIXEL_JPEG_HEADER)))
    y, x, height, width = tf.unstack(window)
    scale = tf.constant(0)  # the index in JPEG_RATIOS of the DCT scale to decode at
    for position, ratio in enumerate(JPEG_RATIOS):
        fits = tf.logical_and(height // ratio >= 2 * size[0], width // ratio >= 2 * size[1])
        scale = tf.where(fits, position, scale)

    def jpeg_window(ratio):
        scaled = tf.stack([y // ratio, x // ratio, tf.maximum(height // ratio, 1),
                           tf.maximum(width // ratio, 1)])
        return tf.io.decode_and_crop_jpeg(contents, scaled, channels=3, ratio=ratio)

    def scaled_jpeg(ratio):
        def decode():
            return tf.image.resize(tf.cast(jpeg_window(ratio), tf.float32), size), window

        return decode

    def whole():
        image = decode_image(contents)
        whole_window = window_of(tf.shape(image))
        top, left, rows, columns = tf.unstack(whole_window)
        return tf.image.resize(image[top : top + rows, left : left + columns], size), whole_window

    def uncommon():
        leaf = tf.where(complete_jpeg, scale - 1, len(JPEG_RATIOS) - 1)
        return tf.switch_case(leaf, [scaled_jpeg(ratio) for ratio in JPEG_RATIOS[1:]] + [whole])

    image, window = tf.cond(
        tf.logical_and(complete_jpeg, tf.equal(scale, 0)),
        lambda: (tf.cast(jpeg_window(1), tf.float32), window), uncommon)
    return tf.image.resize(image, size, method="bilinear"), window


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
    return tf.image.resize(image, rescaled_shape(tf.shape(image)[-3:-1], size),
                           method="bilinear")


def rescaled_shape(shape: tf.Tensor, size: int | tf.Tensor) -> tf.Tensor:
    """The `[height, width]` (int32) that `rescale_shorter_side` gives an image of `shape`."""
    shape = tf.cast(shape, tf.float32)
    factor = tf.cast(size, tf.float32) / tf.reduce_min(shape)
    return tf.maximum(tf.cast(tf.round(shape * factor), tf.int32), 1)


def decode_central_crop(contents: tf.Tensor, size: int, crop_size: tuple[int, int]
                        ) -> tf.Tensor:
    """`central_crop(rescale_shorter_side(decode_image(contents), size), crop_size)`, the
    test-time view (Sect. 3.2): `[crop_h, crop_w, 3]` float32 RGB in [0, 255].

    A JPEG is decoded only in the window the crop's samples read (with a pixel's margin),
    and only the crop is resampled, at the same points and with the same bilinear weights
    (`tf.raw_ops.ScaleAndTranslate`, whose triangle kernel is bilinear interpolation with
    half-pixel centres): the same pixels to float32 rounding, and eval_dataset's centre
    view 13% faster on one core. Anything else is decoded whole.
    """
    crop = tf.constant(crop_size, tf.int32)

    def window_of_jpeg():
        shape = tf.image.extract_jpeg_shape(contents)[:2]
        rescaled = rescaled_shape(shape, size)
        scale = tf.cast(rescaled, tf.float32) / tf.cast(shape, tf.float32)
        offset = tf.cast((rescaled - crop) // 2, tf.float32)
        # Output pixel i samples the image at (offset + i + 0.5) / scale - 0.5, between
        # two pixels; a pixel more each side, as libjpeg decodes a window's edge columns
        # unlike the same columns of the whole image (chroma upsampling).
        first = tf.cast(tf.floor((offset + 0.5) / scale - 0.5), tf.int32) - 1
        last = tf.cast(tf.floor((offset + tf.cast(crop, tf.float32) - 0.5) / scale - 0.5),
                       tf.int32) + 3
        first, last = tf.maximum(first, 0), tf.minimum(last, shape)
        window = tf.io.decode_and_crop_jpeg(contents, tf.concat([first, last - first], 0),
                                            channels=3)
        return tf.raw_ops.ScaleAndTranslate(
            images=tf.cast(window, tf.float32)[None], size=crop, scale=scale,
            translation=tf.cast(first, tf.float32) * scale - offset, kernel_type="triangle",
            antialias=False)[0]

    def whole():
        return central_crop(rescale_shorter_side(decode_image(contents), size), crop_size)

    complete_jpeg = _is_complete_jpeg(contents)
    image = tf.cond(complete_jpeg, window_of_jpeg, whole)
    image.set_shape([*crop_size, 3])
    return image


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


def train_crop(
    contents: tf.Tensor,
    seed: tf.Tensor,
    *,
    scale: tuple[int, int] = SCALE_JITTER,
    crop_size: tuple[int, int] = (CROP_SIZE, CROP_SIZE),
    flip: bool = True,
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Encoded image -> one training crop, rescaled to S, at a random place, flipped at
    random: `([crop_h, crop_w, 3] float32 RGB in [0, 255], the window [y, x, height,
    width] int32 in the original image's pixels, whether it was mirrored)`. The colour
    shift and the weights' preprocessing follow per batch (`colour_shift`,
    `imagenet.preprocess_input`)."""
    image, window = decode_resized_window(
        contents,
        lambda shape: crop_window(shape, scale=scale, crop_size=crop_size, seed=seed),
        crop_size,
    )
    mirrored = is_mirrored(seed) if flip else tf.constant(False)
    if flip:
        image = tf.cond(mirrored, lambda: tf.reverse(image, [1]), lambda: image)
    return image, window, mirrored


def train_transform(contents: tf.Tensor, seed: tf.Tensor, **geometry) -> tf.Tensor:
    """`train_crop`'s image alone: `[crop_h, crop_w, 3]` float32 RGB in [0, 255]."""
    return train_crop(contents, seed, **geometry)[0]


def is_mirrored(seed: tf.Tensor) -> tf.Tensor:
    """Whether the training crop of the image with `seed` is flipped (boolean scalar)."""
    return tf.random.stateless_uniform([], derived_seed(seed, 1)) < 0.5

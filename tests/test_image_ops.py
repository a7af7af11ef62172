"""keras_vgg.image_ops: the augmentation and test-time operations, and the header bounds."""

import textwrap

import numpy as np
import pytest
import skimage.data
import tensorflow as tf
from conftest import run_python
from image_files import (
    PHOTOS,
    encode,
    photo,
    valid_oddities,
)
from PIL import Image

from keras_vgg import image_ops

CROP = (224, 224)


def window_at(image_shape, scale, seed):
    return image_ops.crop_window(tf.constant(image_shape), scale=(scale, scale), crop_size=CROP,
                            seed=tf.constant(seed))


def fast_crop(contents, scale, seed):
    image, _ = image_ops.decode_resized_window(
        contents, lambda shape: window_at(shape, scale, seed), CROP)
    return image.numpy()


def rescale_then_crop(image, scale, window, *, antialias=False):
    """The naive path: rescale the whole image to shorter side S, crop the same region.

    The window's corner falls between rescaled pixels; of the crops at the pixels around
    it, the closest to `reference` is returned when one is given.
    """
    height, width = image.shape[:2]
    factor = scale / min(height, width)
    size = (round(height * factor), round(width * factor))
    rescaled = tf.image.resize(image, size, antialias=antialias).numpy()
    crops = []
    for y in {int(np.floor(window[0] * factor)), int(np.ceil(window[0] * factor))}:
        for x in {int(np.floor(window[1] * factor)), int(np.ceil(window[1] * factor))}:
            y, x = min(y, size[0] - CROP[0]), min(x, size[1] - CROP[1])
            crops.append(rescaled[y : y + CROP[0], x : x + CROP[1]])
    return crops


def closest(ours, crops):
    return min(blurred_difference(ours, crop) for crop in crops)


def blurred_difference(a, b):
    """Mean |a - b| after 4x4 average pooling: insensitive to the sub-pixel offset between
    cropping in original pixels (ours) and at whole rescaled pixels (the naive path)."""
    pool = lambda x: tf.nn.avg_pool2d(x[None], 4, 4, "VALID")[0]  # noqa: E731
    return float(tf.reduce_mean(tf.abs(pool(a) - pool(b))))


@pytest.mark.parametrize("name", PHOTOS)
@pytest.mark.parametrize("scale", [256, 384, 512])
def test_fast_path_samples_the_same_region_as_rescale_then_crop(name, scale):
    image = photo(name)
    contents = encode(image, quality=95)
    decoded = tf.io.decode_jpeg(contents).numpy()
    for seed in ([1, 2], [3, 4], [5, 6]):
        window = window_at(image.shape, scale, seed).numpy()
        ours = fast_crop(contents, scale, seed)
        assert ours.shape == (*CROP, 3)
        same = closest(ours, rescale_then_crop(decoded, scale, window))
        assert same < 4, (name, scale, seed)  # at most half a pixel apart
        # and the measure tells regions apart: the crop 12 px further is clearly different
        moved = window + np.array([12, 12, 0, 0])
        if np.all(moved[:2] + moved[2:] <= image.shape[:2]):
            assert closest(ours, rescale_then_crop(decoded, scale, moved)) > 2 * same


def test_jpeg_windows_are_resized_in_float32_to_the_same_pixels_as_from_uint8():
    """The fast path casts its window to float32 before resizing, for speed only."""
    for name, seed in [("astronaut", [3, 4]), ("coffee", [5, 6]), ("chelsea", [7, 8])]:
        contents = encode(photo(name))
        window = tf.io.decode_and_crop_jpeg(contents, window_at(photo(name).shape, 300, seed))
        np.testing.assert_array_equal(fast_crop(contents, 300, seed),
                                      tf.image.resize(window, CROP))


def test_huge_photo_is_decoded_at_a_coarser_dct_scale(tmp_path):
    """The window of a 4096x3072 JPEG comes from a decode at a coarser DCT scale (its
    memory bound is `test_huge_image_memory_is_bounded`'s): not the full window's pixels
    resized, but as close to an antialiased rescale of it."""
    image = np.asarray(Image.fromarray(photo("astronaut")).resize((4096, 3072)))
    contents = encode(image, quality=90)
    window = window_at(image.shape, 256, [7, 8])
    ours = fast_crop(contents, 256, [7, 8])
    full_window = tf.image.resize(tf.io.decode_and_crop_jpeg(contents, window), CROP)
    assert not np.allclose(ours, full_window, atol=1.0)
    assert closest(ours, rescale_then_crop(image, 256, window.numpy(), antialias=True)) < 4


def test_non_jpeg_files_take_the_whole_decode_path_and_match():
    image = photo("chelsea")
    window = window_at(image.shape, 384, [1, 1]).numpy()
    for contents in (encode(image, "PNG"), encode(image, "BMP"), encode(image, "GIF")):
        ours = fast_crop(contents, 384, [1, 1])
        decoded = tf.io.decode_image(contents, channels=3, expand_animations=False).numpy()
        y, x, h, w = window
        np.testing.assert_allclose(
            ours, tf.image.resize(decoded[y : y + h, x : x + w], CROP).numpy(), atol=1e-3)
    png = fast_crop(encode(image, "PNG"), 384, [1, 1])
    assert closest(png, rescale_then_crop(image, 384, window)) < 2


@pytest.mark.parametrize("shape, test_scale, crop", [
    ((375, 500), 384, 224), ((500, 375), 256, 224),  # ImageNet's shapes, downscaled
    ((90, 120), 256, 224),  # upscaled: the crop's samples reach the image's edges
    ((224, 300), 224, 224),  # the crop is the rescaled image's whole height
    ((301, 300), 224, 224), ((144, 192), 110, 64)])
def test_the_test_time_crop_is_rescale_then_crop_from_the_window_alone(shape, test_scale,
                                                                        crop):
    image = tf.image.resize(photo("astronaut"), shape).numpy().astype(np.uint8)
    for contents in (encode(image), encode(image, "PNG")):
        decoded = tf.io.decode_image(contents, channels=3)
        reference = image_ops.central_crop(
            image_ops.rescale_shorter_side(decoded, test_scale), (crop, crop))
        ours = image_ops.decode_central_crop(contents, test_scale, (crop, crop))
        np.testing.assert_allclose(ours, reference, atol=0.02)  # of 255: float rounding


def test_jpeg_without_end_marker_but_trailing_bytes_is_still_read():
    clean = encode(photo("coffee"))
    trailed = fast_crop(clean + b"camera trailer", 256, [1, 2])
    np.testing.assert_array_equal(trailed, fast_crop(clean, 256, [1, 2]))
    assert trailed.std() > 10  # the photograph, not a blank image


def test_odd_but_valid_files_decode_correctly():
    odd = valid_oddities()
    astronaut = photo("astronaut").astype(float)
    decode = image_ops.decode_image
    assert np.abs(decode(odd["cmyk.JPEG"]).numpy() - astronaut).mean() < 6
    np.testing.assert_array_equal(decode(odd["png_named.JPEG"]).numpy(), astronaut)
    np.testing.assert_array_equal(decode(odd["rgba.png"]).numpy(), astronaut)
    gray = decode(odd["grayscale.JPEG"]).numpy()
    assert gray.shape[2] == 3 and np.array_equal(gray[..., 0], gray[..., 2])
    tiny = fast_crop(odd["tiny.JPEG"], 256, [1, 1])  # 30x20 px, upscaled to the crop
    assert tiny.shape == (*CROP, 3)
    assert np.abs(tiny.mean(axis=(0, 1)) - astronaut[100:120, 200:230].mean(axis=(0, 1))).max() < 8


def test_cmyk_and_grayscale_jpegs_on_the_fast_path():
    odd = valid_oddities()
    rgb = fast_crop(encode(photo("astronaut"), quality=95), 384, [2, 3])
    assert np.abs(fast_crop(odd["cmyk.JPEG"], 384, [2, 3]) - rgb).mean() < 6
    gray = fast_crop(odd["grayscale.JPEG"], 384, [2, 3])
    np.testing.assert_allclose(gray[..., 0], gray[..., 2])
    camera = skimage.data.camera()
    as_rgb = fast_crop(encode(np.stack([camera] * 3, axis=-1), quality=95), 384, [2, 3])
    assert np.abs(gray - as_rgb).mean() < 6


@pytest.mark.slow
def test_huge_image_memory_is_bounded(tmp_path):
    """A 10000x8000 JPEG: peak memory grows far less than its 240 MB of decoded pixels."""
    path = tmp_path / "huge.JPEG"
    Image.new("RGB", (10000, 8000), (120, 60, 30)).save(path, quality=80)
    script = textwrap.dedent(f"""
        import resource, tensorflow as tf
        from keras_vgg import image_ops
        def peak_mb():
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        small = tf.io.encode_jpeg(tf.zeros([400, 300, 3], tf.uint8))
        image_ops.train_transform(small, tf.constant([1, 2]))  # warm up
        before = peak_mb()
        contents = tf.io.read_file({str(path)!r})
        for seed in range(3):
            image = image_ops.train_transform(contents, tf.constant([seed, 1]))
            assert image.shape == (224, 224, 3)
        print(peak_mb() - before)
    """)
    result = run_python(script)
    assert result.returncode == 0, result.stderr[-2000:]
    assert float(result.stdout.split()[-1]) < 100  # a full decode alone would add 240 MB


def test_derived_seeds_share_no_stream_with_any_images_own_seed():
    """Epoch-keyed seeds of neighbouring images differ by one; the flip's and the colour
    shift's seeds must not be another image's seed (or its draws would repeat)."""
    keyed = [tf.constant([5, epoch * 2**32 + position], tf.int64)
             for epoch in range(2) for position in range(100)]
    pairs = [tuple(int(v) for v in seed) for seed in keyed]
    pairs += [tuple(int(v) for v in image_ops.derived_seed(seed, stream))
              for seed in keyed for stream in (1, 2)]
    assert len(set(pairs)) == len(pairs) == 600


def windows(image_shape, seeds, scale=image_ops.SCALE_JITTER, crop_size=CROP):
    return tf.data.Dataset.from_tensor_slices(seeds).map(
        lambda seed: image_ops.crop_window(tf.constant(image_shape), scale=scale,
                                      crop_size=crop_size, seed=seed)
    ).batch(len(seeds)).get_single_element().numpy()


def test_scale_jitter_draws_s_uniformly_and_the_crop_anywhere():
    seeds = np.stack([np.arange(4000), np.full(4000, 9)], axis=1)
    y, x, height, width = windows((375, 500, 3), seeds).T
    np.testing.assert_array_equal(height, width)
    s = 224 * 375 / height  # the S each window was cut at (to rounding)
    assert 255 < s.min() < 262 and 500 < s.max() < 514
    np.testing.assert_allclose(np.percentile(s, [25, 50, 75]), [320, 384, 448], atol=8)
    for offset, room in [(y, 375 - height), (x, 500 - width)]:
        assert offset.min() >= 0 and np.all(offset <= room)
        np.testing.assert_allclose(np.mean(offset / room), 0.5, atol=0.03)
    fixed = windows((375, 500, 3), seeds[:50], scale=(256, 256), crop_size=(224, 160))
    assert {tuple(hw) for hw in fixed[:, 2:]} == {(328, 234)}  # 375 / 256 * (224, 160)


def test_training_crops_are_flipped_half_of_the_time():
    contents = encode(photo("astronaut")[::4, ::4])  # 128x128
    seeds = [tf.constant([seed, 3]) for seed in range(60)]

    def crop(seed, flip):
        return image_ops.train_transform(contents, seed, scale=(96, 128), crop_size=(64, 64),
                                    flip=flip).numpy()

    mirrored = 0
    for seed in seeds:
        plain, maybe = crop(seed, False), crop(seed, True)
        assert not np.array_equal(plain, plain[:, ::-1])
        if np.array_equal(maybe, plain[:, ::-1]):
            mirrored += 1
        else:
            np.testing.assert_array_equal(maybe, plain)
    assert 18 <= mirrored <= 42


def test_colour_shift_has_alexnets_pca_covariance():
    # one batch: each of its 4000 one-pixel images draws its own shift
    shifts = image_ops.colour_shift(tf.zeros([4000, 1, 1, 3]), tf.constant([0, 0]))[:, 0, 0]
    eigenvectors = np.array(image_ops.PCA_EIGENVECTORS)
    variances = (255 * 0.1 * np.array(image_ops.PCA_EIGENVALUES)) ** 2  # AlexNet: sigma 0.1
    expected = (eigenvectors * variances) @ eigenvectors.T
    np.testing.assert_allclose(np.cov(shifts.numpy().T), expected, rtol=0.15, atol=0.2)


def test_colour_shift_adds_the_same_vector_to_every_pixel():
    image = tf.random.stateless_uniform([5, 7, 3], [1, 1], maxval=255)
    shifted = image_ops.colour_shift(image, tf.constant([4, 2]))
    delta = (shifted - image).numpy().reshape(-1, 3)
    np.testing.assert_allclose(delta, np.broadcast_to(delta[0], delta.shape), atol=1e-4)
    assert np.abs(delta[0]).max() > 0


def test_colour_shift_of_a_batch_draws_one_shift_per_image():
    images = tf.random.stateless_uniform([4, 5, 6, 3], [2, 2], maxval=255)
    shifted = image_ops.colour_shift(images, tf.constant([9, 9]))
    deltas = (shifted - images).numpy().reshape(4, -1, 3)
    for delta in deltas:
        np.testing.assert_allclose(delta, np.broadcast_to(delta[0], delta.shape), atol=1e-4)
    assert len({tuple(np.round(delta[0], 3)) for delta in deltas}) == 4


def test_the_bounds_are_read_from_headers(tmp_path):
    images = {"JPEG": {}, "PNG": {}, "GIF": {}, "BMP": {}, "WEBP": {"lossless": True}}
    for fmt, options in images.items():
        for height, width in [(23, 37), (40, 300)]:
            contents = encode(np.zeros((height, width, 3), np.uint8), fmt, **options)
            assert list(image_ops.declared_size(tf.constant(contents)).numpy()) == [height, width]
    lossy = encode(np.zeros((23, 37, 3), np.uint8), "WEBP", quality=80)
    alpha = encode(np.zeros((23, 37, 4), np.uint8), "WEBP", mode="RGBA")
    for contents in (lossy, alpha):
        assert list(image_ops.declared_size(tf.constant(contents)).numpy()) == [23, 37]
    top_down = bytearray(encode(np.zeros((23, 37, 3), np.uint8), "BMP"))
    top_down[22:26] = (-23).to_bytes(4, "little", signed=True)  # rows stored top first
    assert list(image_ops.declared_size(tf.constant(bytes(top_down))).numpy()) == [23, 37]
    assert list(image_ops.declared_size(tf.constant(b"not an image")).numpy()) == [-1, -1]
    assert image_ops.image_problem(tf.constant(b"")).numpy() == b""

import os
import re
import textwrap

import numpy as np
import pytest
import skimage.data
import tensorflow as tf
from conftest import run_python
from image_files import (
    PHOTOS,
    broken_files,
    encode,
    imagenet_folder,
    photo,
    valid_oddities,
    write,
)
from PIL import Image

from keras_vgg import data, guard, image_ops, imagenet

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
    image = np.asarray(Image.fromarray(photo("astronaut")).resize((4096, 3072)))
    contents = encode(image, quality=90)
    window = window_at(image.shape, 256, [7, 8]).numpy()
    decoded = image_ops._decode_huge_jpeg_window(tf.constant(contents), window, CROP).numpy()
    assert decoded.shape[0] <= window[2] // 4  # a coarse DCT scale, not the full window
    assert min(decoded.shape[:2]) >= 2 * CROP[0]
    ours = fast_crop(contents, 256, [7, 8])
    np.testing.assert_array_equal(ours, tf.image.resize(decoded, CROP))
    assert closest(ours, rescale_then_crop(image, 256, window, antialias=True)) < 4


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


def test_jpeg_without_end_marker_but_trailing_bytes_is_still_read():
    contents = encode(photo("coffee")) + b"camera trailer"
    assert fast_crop(contents, 256, [1, 2]).shape == (*CROP, 3)


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


def test_input_pipelines_split_the_epoch_between_them(tmp_path):
    good = imagenet_folder(str(tmp_path), ["n01", "n02"], per_class=5)
    seen = []
    for index in range(3):
        context = tf.distribute.InputContext(3, index, 3)
        dataset = data.train_dataset(f"folder:{tmp_path}", global_batch_size=6, seed=0,
                                     input_context=context, with_ids=True)
        seen += [i.decode() for _, _, ids in dataset for i in ids.numpy()]
    assert sorted(seen) == sorted(good)


def test_data_service_with_several_pipelines_needs_a_job_name(tmp_path):
    with pytest.raises(ValueError, match="shared `job_name`"):
        data.train_dataset(f"folder:{tmp_path}", global_batch_size=4,
                           input_context=tf.distribute.InputContext(2, 0, 2),
                           data_service="grpc://localhost:1")


def skipped(log: str) -> list[tuple[str, int]]:
    """The guard's lines about unreadable files in `log`: `(id, running count)`."""
    return [(name, int(count)) for name, count in re.findall(
        rf"^keras_vgg: skipped (.*): {guard.UNREADABLE} \((\d+) skipped so far\)$", log, re.M)]


def test_every_valid_image_kept_every_broken_one_reported(tmp_path, capfd):
    good = imagenet_folder(str(tmp_path), ["n01", "n02"], per_class=3)
    good += write(str(tmp_path / "n02"), valid_oddities())
    broken = write(str(tmp_path / "n01"), broken_files())
    dataset = data.train_dataset(f"folder:{tmp_path}", global_batch_size=5, seed=0,
                                 with_ids=True)
    seen = [i.decode() for _, _, ids in dataset for i in ids.numpy()]
    assert sorted(seen) == sorted(good)
    skips = skipped(capfd.readouterr().err)
    assert sorted(name for name, _ in skips) == sorted(broken)
    assert [count for _, count in skips] == list(range(1, len(broken) + 1))


def test_a_group_in_which_every_file_is_broken_is_skipped(tmp_path, capfd):
    good = imagenet_folder(str(tmp_path), ["n01"], per_class=1)
    for copy in range(4):  # 21 files: one group of 16 or of 5 holds only broken ones
        write(str(tmp_path / "n01"), {f"{copy}_{name}": payload
                                      for name, payload in broken_files().items()})
    dataset = data.train_dataset(f"folder:{tmp_path}", global_batch_size=4, with_ids=True)
    assert [i.decode() for _, _, ids in dataset for i in ids.numpy()] == good
    assert "(20 skipped so far)" in capfd.readouterr().err


def test_a_dropped_record_is_reported_even_when_a_survivor_has_its_id(capfd):
    good, bad = encode(photo("coffee")[:64, :64]), broken_files()["random.JPEG"]
    records = tf.data.Dataset.from_tensor_slices(
        {"image": [good, bad, good, bad], "id": ["twin", "twin", "kept", "lost"]})
    groups = guard.map_skipping_undecodable(
        records, lambda r: tf.image.resize(image_ops.decode_image(r["image"]), (8, 8)),
        group_size=4)
    assert [i.decode() for i in groups.unbatch().map(lambda r: r["id"]).as_numpy_iterator()
            ] == ["twin", "kept"]
    assert skipped(capfd.readouterr().err) == [("twin", 1), ("lost", 2)]


def test_labels_follow_their_images(tmp_path):
    imagenet_folder(str(tmp_path), ["n01", "n02", "n03"], per_class=2)
    dataset = data.train_dataset(f"folder:{tmp_path}", global_batch_size=4, seed=0,
                                 with_ids=True)
    for _, labels, ids in dataset:
        for label, path in zip(labels.numpy(), ids.numpy(), strict=True):
            assert ["n01", "n02", "n03"][label] == path.decode().split(os.sep)[-2]


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


def batches(dataset):
    return [(images.numpy(), labels.numpy()) for images, labels in dataset]


def test_seeded_pipeline_is_reproducible_and_rerandomized_each_epoch(tmp_path):
    imagenet_folder(str(tmp_path), ["n01", "n02"], per_class=3)

    def make(seed):
        return data.train_dataset(f"folder:{tmp_path}", global_batch_size=3, seed=seed)

    first, again = batches(make(1)), batches(make(1))
    for (a, la), (b, lb) in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(la, lb)
    dataset = make(1)
    epoch1, epoch2 = batches(dataset), batches(dataset)
    assert not all(np.array_equal(a, b) for (a, _), (b, _) in zip(epoch1, epoch2, strict=True))
    other = batches(make(2))
    assert not all(np.array_equal(a, b) for (a, _), (b, _) in zip(first, other, strict=True))


def test_epoch_keyed_pipeline_is_a_function_of_seed_and_epoch(tmp_path):
    good = imagenet_folder(str(tmp_path), ["n01", "n02"], per_class=4)
    epoch = tf.Variable(0, dtype=tf.int64)

    def one_epoch(value, seed=5):
        epoch.assign(value)
        dataset = data.train_dataset(f"folder:{tmp_path}", global_batch_size=3, seed=seed,
                                     epoch=epoch, with_ids=True)
        return [(x.numpy(), [i.decode() for i in ids.numpy()]) for x, _, ids in dataset]

    first, again, second = one_epoch(0), one_epoch(0), one_epoch(1)
    for (a, ids_a), (b, ids_b) in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)
        assert ids_a == ids_b
    assert sorted(sum((ids for _, ids in second), [])) == sorted(good)
    assert [ids for _, ids in first] != [ids for _, ids in second]  # a new order each epoch
    with pytest.raises(ValueError, match="needs a seed"):
        data.train_dataset(f"folder:{tmp_path}", global_batch_size=3, epoch=epoch)


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
    seeds = tf.random.experimental.stateless_split(tf.constant([0, 0]), 4000)
    shifts = tf.stack([image_ops.colour_shift(tf.zeros([1, 1, 3]), seed)[0, 0] for seed in seeds])
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


def test_preprocessing_matches_the_weights(tmp_path):
    imagenet_folder(str(tmp_path), ["n01"], per_class=2)

    def images(mode):
        dataset = data.train_dataset(f"folder:{tmp_path}", global_batch_size=2, seed=3,
                                     preprocessing=mode, colour=False, flip=False)
        return next(iter(dataset))[0].numpy()

    caffe, torch_mode = images("caffe"), images("torch")
    rgb = caffe[..., ::-1] + np.array([123.68, 116.779, 103.939])
    std = np.array([0.229, 0.224, 0.225])
    np.testing.assert_allclose(torch_mode, (rgb / 255 - [0.485, 0.456, 0.406]) / std,
                               rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    "kwargs, error",
    [(dict(scale=(256, 512), crop_size=300), "larger than the smallest training scale"),
     (dict(scale=256, crop_size=(224, 300)), "larger than the smallest training scale"),
     (dict(scale="512,256"), "S_min <= S_max"), (dict(scale=(0, 0)), "0 < S_min"),
     (dict(crop_size=(0, 10)), "crop_size"), (dict(global_batch_size=0), "at least 1")],
)
def test_bad_augmentation_arguments(kwargs, error, tmp_path):
    with pytest.raises(ValueError, match=error):
        data.train_dataset(f"folder:{tmp_path}", **{"global_batch_size": 2, **kwargs})


@pytest.mark.parametrize(
    "kwargs, error",
    [(dict(test_scale=200), "larger than the test scale Q=200"),
     (dict(test_scale=256, crop_size=(224, 300)), r"\(224, 300\) is larger than the test"),
     (dict(test_scale=256, crop_size=(300, 224)), r"\(300, 224\) is larger than the test"),
     (dict(batch_size=0), "at least 1, got 0")])
def test_bad_evaluation_arguments(kwargs, error, tmp_path):
    with pytest.raises(ValueError, match=error):
        data.eval_dataset(f"folder:{tmp_path}", **kwargs)


def test_eval_protocols(tmp_path):
    folder = tmp_path / "val"
    write(str(folder), {"a.jpg": encode(photo("coffee")), "b.jpg": encode(photo("astronaut"))})
    labels = tmp_path / "labels.txt"
    labels.write_text("a.jpg 1\nb.jpg 2\n")
    spec = f"folder:{folder}?labels={labels}"
    centre = list(data.eval_dataset(spec, protocol="center", test_scale=256, batch_size=8))
    assert [tuple(x.shape) for x, _ in centre] == [(2, 224, 224, 3)]
    coffee = image_ops.rescale_shorter_side(tf.io.decode_jpeg(encode(photo("coffee"))), 256)
    np.testing.assert_allclose(  # 256x384: the crop is 16 rows and 80 columns in
        centre[0][0][0], imagenet.preprocess_input(coffee[16:240, 80:304]), atol=1e-4)
    dense = [x.shape for x, _ in data.eval_dataset(spec, protocol="dense", test_scale=384)]
    assert dense == [(1, 384, 576, 3), (1, 384, 384, 3)]  # coffee is 400x600
    flipped, label = next(iter(data.eval_dataset(spec, protocol="dense", test_scale=256,
                                                 flip=True)))
    assert label.shape == () and int(label) == 1
    np.testing.assert_allclose(flipped[1], flipped[0][:, ::-1])
    crops = next(iter(data.eval_dataset(spec, protocol="multi_crop", test_scale=256,
                                        flip=True, preprocessing="tf")))[0]
    assert crops.shape == (50, 224, 224, 3)
    decoded = tf.io.decode_jpeg(encode(photo("coffee")))
    scaled = image_ops.rescale_shorter_side(decoded, 256) / 127.5 - 1
    np.testing.assert_allclose(crops[0], scaled[:224, :224], atol=1e-4)  # top left
    np.testing.assert_allclose(crops[2], scaled[:224, 80:304], atol=1e-4)  # top middle (w 384)
    np.testing.assert_allclose(crops[24], scaled[-224:, -224:], atol=1e-4)  # bottom right
    np.testing.assert_allclose(crops[25], crops[0][:, ::-1], atol=1e-6)  # mirrored


def collect_ids_with_replicas(source, replicas, batch):
    """Runs the dataset under MirroredStrategy on `replicas` logical CPUs in a new process."""
    script = textwrap.dedent(f"""
        import tensorflow as tf
        from keras_vgg import data
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * {replicas})
        strategy = tf.distribute.MirroredStrategy([f"/cpu:{{i}}" for i in range({replicas})])
        dataset = strategy.distribute_datasets_from_function(
            lambda context: data.train_dataset({source!r}, global_batch_size={batch},
                                               input_context=context, seed=0, with_ids=True))
        used = set()
        for _, _, ids in dataset:
            for index, local in enumerate(strategy.experimental_local_results(ids)):
                for i in local.numpy():
                    print("ID", i.decode())
                    used.add(index)
        print("REPLICAS", len(used), strategy.num_replicas_in_sync)
    """)
    result = run_python(script)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    return ([line[3:] for line in lines if line.startswith("ID ")],
            [line for line in lines if line.startswith("REPLICAS")][0].split()[1:])


def test_four_replicas_see_every_image_exactly_once(tmp_path):
    good = imagenet_folder(str(tmp_path), ["n01", "n02", "n03"], per_class=7)  # 21 images
    write(str(tmp_path / "n03"), broken_files())
    ids, (used, replicas) = collect_ids_with_replicas(f"folder:{tmp_path}", 4, batch=8)
    assert sorted(ids) == sorted(good)
    assert (used, replicas) == ("4", "4")


def test_tf_data_service_serves_each_image_once(tmp_path):
    good = imagenet_folder(str(tmp_path), ["n01", "n02"], per_class=5)
    dispatcher = tf.data.experimental.service.DispatchServer()
    address = dispatcher.target.split("://")[1]
    workers = [tf.data.experimental.service.WorkerServer(
        tf.data.experimental.service.WorkerConfig(dispatcher_address=address))
        for _ in range(2)]
    dataset = data.train_dataset(f"folder:{tmp_path}", global_batch_size=3, seed=0,
                                 with_ids=True, data_service=dispatcher.target)
    ids = [i.decode() for _, _, batch in dataset for i in batch.numpy()]
    assert sorted(ids) == sorted(good)
    del workers


# --- Bounded cost: images beyond the bounds are skipped before decoding, with the reason ---


def lying_jpeg(height: int, width: int) -> bytes:
    """A small real JPEG whose SOF header claims `height` x `width` pixels."""
    contents = bytearray(encode(photo("coffee")[:16, :16]))
    sof = contents.index(b"\xff\xc0")
    contents[sof + 5 : sof + 9] = height.to_bytes(2, "big") + width.to_bytes(2, "big")
    return bytes(contents)


def beyond_the_bounds() -> dict[str, tuple[bytes, str]]:
    """Files beyond the bounds, and the reason each is skipped."""
    strip = np.full((1, 10000, 3), 128, np.uint8)
    return {
        "strip.JPEG": (encode(strip), "is 10000x1 pixels, beyond the 8:1 aspect-ratio bound"),
        "tall.PNG": (encode(strip.transpose(1, 0, 2)[:2000], "PNG"),
                     "is 1x2000 pixels, beyond the 8:1 aspect-ratio bound"),
        "huge_header.JPEG": (lying_jpeg(60000, 60000),
                             f"is 60000x60000 pixels, above the bound of {image_ops.MAX_PIXELS}"),
        "no_data.JPEG": (lying_jpeg(4000, 3000),
                         "declares 3000x4000 pixels in only"),
    }


def within_the_bounds() -> dict[str, bytes]:
    """Extreme images that are still within the bounds: every one is used."""
    return {"eight_to_one.JPEG": encode(np.full((16, 128, 3), 90, np.uint8)),
            "one_to_eight.PNG": encode(np.full((128, 16, 3), 90, np.uint8), "PNG")}


@pytest.mark.parametrize("protocol", ["center", "dense", "original", "train"])
def test_images_beyond_the_bounds_are_skipped_with_the_reason(protocol, tmp_path, capfd):
    good = imagenet_folder(str(tmp_path), ["n01", "n02"], per_class=2)
    good += write(str(tmp_path / "n01"), within_the_bounds())
    bad = {name: reason for name, (_, reason) in beyond_the_bounds().items()}
    write(str(tmp_path / "n02"), {name: contents for name, (contents, _)
                                  in beyond_the_bounds().items()})
    if protocol == "train":
        dataset = data.train_dataset(f"folder:{tmp_path}", global_batch_size=3, seed=0,
                                     scale=32, crop_size=32, with_ids=True)
    else:
        dataset = data.eval_dataset(f"folder:{tmp_path}", protocol=protocol, test_scale=32,
                                    crop_size=32, with_ids=True)
    seen = [i.decode() for _, _, ids in dataset for i in np.atleast_1d(ids.numpy())]
    assert sorted(seen) == sorted(good)
    log = capfd.readouterr().err
    for name, reason in bad.items():
        assert f"{tmp_path / 'n02' / name}: {reason}" in log, (name, log)
    assert "undecodable" not in log


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
    assert list(image_ops.declared_size(tf.constant(b"not an image")).numpy()) == [-1, -1]
    assert image_ops.image_problem(tf.constant(b"")).numpy() == b""


def test_every_skipped_file_is_named_however_many(tmp_path, capfd):
    imagenet_folder(str(tmp_path), ["n01"], per_class=1)
    broken = write(str(tmp_path / "n01"), {f"{index}.JPEG": b"not a jpeg" for index in range(9)})
    list(data.eval_dataset(f"folder:{tmp_path}", test_scale=32, crop_size=32))
    log = capfd.readouterr().err
    assert all(path in log for path in broken), log
    assert "..." not in log


def test_a_file_deleted_after_listing_is_skipped_and_named(tmp_path, capfd):
    good = imagenet_folder(str(tmp_path), ["n01", "n02"], per_class=2)
    dataset = data.train_dataset(f"folder:{tmp_path}", global_batch_size=2, seed=0, scale=32,
                                 crop_size=32, with_ids=True)
    os.remove(good[1])
    os.remove(good[2])
    os.mkdir(good[2])  # unreadable as a file, whoever runs the test (root reads any file)
    seen = [i.decode() for _, _, ids in dataset for i in ids.numpy()]
    assert sorted(seen) == sorted(good[:1] + good[3:])
    log = capfd.readouterr().err
    assert good[1] in log and good[2] in log and "(2 skipped so far)" in log

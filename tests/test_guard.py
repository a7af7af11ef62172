"""keras_vgg.guard: bad records skipped and named, in every pipeline, nothing else lost."""

import os
import re

import numpy as np
import pytest
import tensorflow as tf
from image_files import (
    broken_files,
    encode,
    imagenet_folder,
    photo,
    valid_oddities,
    write,
)

from keras_vgg import data, guard, image_ops


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


def test_twenty_broken_files_beside_one_good_one(tmp_path, capfd):
    good = imagenet_folder(str(tmp_path), ["n01"], per_class=1)
    for copy in range(4):
        write(str(tmp_path / "n01"), {f"{copy}_{name}": payload
                                      for name, payload in broken_files().items()})
    dataset = data.train_dataset(f"folder:{tmp_path}", global_batch_size=4, with_ids=True)
    assert [i.decode() for _, _, ids in dataset for i in ids.numpy()] == good
    assert "(20 skipped so far)" in capfd.readouterr().err


@pytest.mark.parametrize("records_can_fail", [True, False], ids=["streamed", "listed"])
def test_each_dropped_record_is_named_in_order_whatever_its_window(records_can_fail, capfd):
    """Windows of 4: the first all broken, a survivor sharing a dropped record's id, and a
    last window of one."""
    good, bad = encode(photo("coffee")[:64, :64]), broken_files()["random.JPEG"]
    records = tf.data.Dataset.from_tensor_slices({
        "image": [bad, bad, bad, bad, good, bad, good, bad, bad],
        "id": ["a", "b", "c", "d", "twin", "twin", "kept", "lost", "last"]})
    transformed = guard.map_skipping_undecodable(
        records, lambda r: tf.image.resize(image_ops.decode_image(r["image"]), (8, 8)),
        records_can_fail=records_can_fail, window=4)
    assert [i.decode() for i in transformed.map(lambda r: r["id"]).as_numpy_iterator()
            ] == ["twin", "kept"]
    assert skipped(capfd.readouterr().err) == [
        ("a", 1), ("b", 2), ("c", 3), ("d", 4), ("twin", 5), ("lost", 6), ("last", 7)]


def test_an_error_of_the_stream_itself_stops_a_streamed_pipeline():
    """Only the transform's errors are skipped: a stream that fails (a damaged TFRecord
    file, a label out of range) stops the pipeline with its own error."""
    good = encode(photo("coffee")[:64, :64])

    def record(index):
        checked = tf.debugging.assert_less(index, tf.constant(4, tf.int64),
                                           message="label out of range")
        with tf.control_dependencies([checked]):
            return {"image": tf.constant(good), "id": tf.strings.as_string(index),
                    "label": tf.identity(index)}

    records = tf.data.Dataset.range(6).map(record)
    transformed = guard.map_skipping_undecodable(
        records, lambda r: tf.image.resize(image_ops.decode_image(r["image"]), (8, 8)),
        window=4)
    with pytest.raises(tf.errors.InvalidArgumentError, match="label out of range"):
        list(transformed)


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


@pytest.mark.parametrize("view", ["center", "multi_crop", "original", "train"])
def test_images_beyond_the_bounds_are_skipped_with_the_reason(view, tmp_path, capfd):
    good = imagenet_folder(str(tmp_path), ["n01", "n02"], per_class=2)
    good += write(str(tmp_path / "n01"), within_the_bounds())
    bad = {name: reason for name, (_, reason) in beyond_the_bounds().items()}
    write(str(tmp_path / "n02"), {name: contents for name, (contents, _)
                                  in beyond_the_bounds().items()})
    if view == "train":
        dataset = data.train_dataset(f"folder:{tmp_path}", global_batch_size=3, seed=0,
                                     scale=32, crop_size=32, with_ids=True)
    else:
        dataset = data.eval_dataset(f"folder:{tmp_path}", view=view, test_scale=32,
                                    crop_size=32, with_ids=True)
    seen = [i.decode() for _, _, ids in dataset for i in np.atleast_1d(ids.numpy())]
    assert sorted(seen) == sorted(good)
    log = capfd.readouterr().err
    for name, reason in bad.items():
        assert f"{tmp_path / 'n02' / name}: {reason}" in log, (name, log)
    assert "undecodable" not in log


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


def test_a_file_damaged_mid_epoch_is_named_once_and_the_rest_kept(tmp_path, capfd):
    """A file that goes bad while the epoch is read, windows after the first batch: it is
    dropped and named, once, and every other image is kept, in order."""
    small = encode(photo("coffee")[:48, :48])
    files = write(str(tmp_path / "n01"), {f"{index:03d}.JPEG": small
                                          for index in range(3 * guard.WINDOW + 5)})
    dataset = data.eval_dataset(f"folder:{tmp_path}", test_scale=32, crop_size=32,
                                batch_size=4, with_ids=True)
    batches = iter(dataset)
    first = [i.decode() for i in next(batches)[2].numpy()]
    victim = files[-2]  # not yet read: the pipeline reads ahead by a few batches
    with open(victim, "r+b") as file:
        file.truncate(40)
    rest = [i.decode() for _, _, ids in batches for i in ids.numpy()]
    assert first + rest == [path for path in files if path != victim]
    assert skipped(capfd.readouterr().err) == [(victim, 1)]

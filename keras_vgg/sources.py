"""Where training and evaluation images come from, named by one string everywhere.

    tfds:imagenet2012?data_dir=D&manual_dir=M   TFDS's own builder (manual_dir holds
                                                ILSVRC2012_img_train.tar / _val.tar)
    tfds:caltech101, tfds:voc/2007              TFDS builders that download their archives,
                                                or read them from ?manual_dir=M
    folder:/data/train                          root/<synset>/<image>, class = sorted synsets
    folder:/data/train?classes=imagenet         ... class = ImageNet id of the synset
    folder:/data/val?labels=/data/val.txt       flat folder + labels file
    folder:/data/voc?labels=L&multi_label=true  flat folder, several labels per image
    folder:/data/train?boxes=/data/bbox_train   ... with ground-truth boxes (localisation):
                                                XML files or a LOC_*_solution.csv
    tfrecord:/data/train-*?label_offset=1       image/encoded + image/class/label shards

Every source yields records `{"label": int32, "id": tf.string}` and the encoded image:
`"image"` (bytes, tf.string), or for folders `"path"`, read by `encoded_image` inside the
data pipeline's guard, so that a file deleted after the folder was listed is skipped and
named like a corrupt one. The id (a path or file name) names an image in logs and tests.

Multi-label sources (PASCAL VOC's classification task: `tfds:voc/...`, or a labels file
with `multi_label=true`) label each image with an int32 `[classes]` vector instead: 1 for
a class shown, 0 for one not shown, and -1 for VOC's "difficult" (a class shown only by
objects marked difficult), which VOC's evaluation leaves out of that class's score.

A flat folder of `ILSVRC2012_val_*.JPEG` files without `?labels=` takes TFDS's validation
labels (line N of the 50,000-line file labels image N). TFRecord labels are 1-based by
default, as Inception's and the TPU scripts write them. An empty class folder is refused, by
name: it would take a label and an output that no image teaches. Training and ImageNet
evaluation refuse multi-label sources, and VOC-2012's test split is refused: its labels are
not public.
"""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import os
import re
import sys
import urllib.parse

import numpy as np

from keras_vgg import annotations, image_ops, imagenet
from keras_vgg.requires_tensorflow import tf, unconverted

SOURCE_KINDS = ("tfds", "folder", "tfrecord")
# TFRecords written by the common ImageNet scripts (Inception's build_imagenet_data.py,
# the TPU imagenet_to_gcs.py) number classes 1..1000, keeping 0 for "background".
TFRECORD_LABEL_OFFSET = 1
# The largest file an image within the bounds can be (`image_ops.MAX_PIXELS` as a 16-bit
# RGBA PNG stored uncompressed, and a megabyte of metadata): a larger one is skipped
# without being read.
MAX_FILE_BYTES = 8 * image_ops.MAX_PIXELS + (1 << 20)
_VAL_INDEX = re.compile(r"ILSVRC2012_val_(\d{8})\.", re.IGNORECASE)


@dataclasses.dataclass(frozen=True)
class Records:
    """A source opened for reading.

    Attributes:
      dataset: elements `{"image" or "path": tf.string, "label": tf.int32, "id": tf.string}`
        (read the image with `encoded_image`), folders' with each file's listed size,
        `"bytes"` (int64).
      num_examples: examples in this shard, when the source knows it.
      class_ids: the classes of the labelling, in label order: ImageNet synsets
        ("n01440764"), class folder names, or the labels as strings.
      multi_label: whether each label is a `[classes]` vector (1 shown, 0 not, -1
        difficult) rather than one class index.
      boxes: whether records carry their class's ground-truth boxes (folders with
        `?boxes=`): `"boxes"` `[max boxes, 4]` float32 corners in the image's pixels, the
        first `"box_count"` (int32) of them real, the rest zeros.
      streamed: whether the records are read from files as they are iterated (TFRecord,
        TFDS), so that iterating them can fail (a damaged file), rather than listed in
        memory (folders, whose files `encoded_image` reads).
    """

    dataset: tf.data.Dataset
    num_examples: int | None
    class_ids: tuple[str, ...]
    multi_label: bool = False
    boxes: bool = False
    streamed: bool = True

    @property
    def num_classes(self) -> int:
        return len(self.class_ids)


def open_single_label(spec: str, *, split: str = "train", purpose: str) -> Records:
    """`open_source(spec, split=split)`, refusing multi-label data, which `purpose` (e.g.
    "training") cannot use: it needs one class per image."""
    records = open_source(spec, split=split)
    if records.multi_label:
        raise ValueError(
            f"{spec!r} is multi-label (several classes per image); {purpose} needs one class "
            "per image. Multi-label data is for recipes/transfer.py (Appendix B)")
    return records


def encoded_image(record: dict, read: tf.Tensor | bool = True) -> tf.Tensor:
    """A record's encoded image (tf.string): its bytes, read from its file for folders;
    empty, unread, for a file larger than `MAX_FILE_BYTES` (`file_problem` says why), and
    where `read` (a scalar bool) is False."""
    if "image" in record:
        return tf.where(read, record["image"], b"")
    return tf.cond(tf.logical_or(tf.logical_not(read), record["bytes"] > MAX_FILE_BYTES),
                   lambda: tf.constant(b""), lambda: tf.io.read_file(record["path"]))


def file_problem(record: dict) -> tf.Tensor:
    """Why a folder record's file is not read, as a scalar tf.string ("" when it is read)."""
    if "bytes" not in record:
        return tf.constant("")
    return tf.where(
        record["bytes"] > MAX_FILE_BYTES,
        tf.strings.join(["a file of ", tf.strings.as_string(record["bytes"]),
                         f" bytes, larger than any image within the bounds ({MAX_FILE_BYTES})"]),
        "")


def _file_sizes(paths: list[str]) -> np.ndarray:
    """Each file's size in bytes when listed, int64 (-1 when it cannot be read then)."""
    def size(path: str) -> int:
        try:
            return os.stat(path).st_size
        except OSError:
            return -1

    return np.array([size(path) for path in paths], np.int64)


@dataclasses.dataclass(frozen=True)
class SourceSpec:
    kind: str
    location: str
    options: dict[str, str]

    @classmethod
    def parse(cls, spec: str) -> SourceSpec:
        """`kind:location?key=value&...` -> SourceSpec; raises ValueError on bad specs."""
        kind, sep, rest = spec.partition(":")
        if not sep or kind not in SOURCE_KINDS or not rest:
            raise ValueError(
                f"bad data source {spec!r}: expected 'tfds:NAME', 'folder:PATH' or "
                "'tfrecord:GLOB', with optional '?key=value&...' options"
            )
        location, _, query = rest.partition("?")
        options = dict(urllib.parse.parse_qsl(query, strict_parsing=bool(query)))
        return cls(kind, location, options)

    @property
    def spec(self) -> str:
        """The spec string `parse` reads back."""
        query = "?" + urllib.parse.urlencode(self.options) if self.options else ""
        return f"{self.kind}:{self.location}{query}"

    def checked_options(self, *allowed: str) -> dict[str, str]:
        """The options, after checking that each is one of `allowed`."""
        unknown = sorted(set(self.options) - set(allowed))
        if unknown:
            raise ValueError(
                f"data source {self.kind}:{self.location}: unknown options {unknown}; "
                f"this kind accepts {sorted(allowed)}"
            )
        return self.options

    def integer_option(self, name: str, default: int, *, minimum: int) -> int:
        """The integer option `name` (`default` when absent); ValueError naming it unless
        it is an integer of at least `minimum`."""
        value = self.options.get(name)
        if value is None:
            return default
        try:
            number = int(value)
        except ValueError:
            number = None
        if number is None or number < minimum:
            raise ValueError(f"data source {self.kind}:{self.location}: option {name}="
                             f"{value[:40]!r} must be an integer of at least {minimum}")
        return number


def open_source(
    spec: str,
    *,
    split: str = "train",
    input_context: tf.distribute.InputContext | None = None,
    shuffle_files: bool = False,
    seed: int | None = None,
    epoch: tf.Variable | None = None,
) -> Records:
    """Opens a source, sharded for `input_context` (one shard per input pipeline, i.e. per
    worker), file order shuffled each epoch if `shuffle_files`. `split` selects a TFDS
    split; a folder or TFRecord spec names one split by its path.

    With `epoch` (an int64 variable holding the current epoch) the file order is a pure
    function of `(seed, epoch)`, so a resumed run reads epoch k as an uninterrupted one
    does; TFDS sources then keep one file order (TFDS shuffles with Python seeds only).
    """
    if epoch is not None and shuffle_files and seed is None:
        raise ValueError("an epoch-keyed file order needs a seed")
    parsed = SourceSpec.parse(spec)
    opener = {"tfds": _open_tfds, "folder": _open_folder, "tfrecord": _open_tfrecord}
    return opener[parsed.kind](
        parsed, split=split, input_context=input_context,
        shuffle_files=shuffle_files, seed=seed, epoch=epoch,
    )


def _shard(paths: list, input_context: tf.distribute.InputContext | None) -> list:
    if input_context is None or input_context.num_input_pipelines == 1:
        return paths
    return paths[input_context.input_pipeline_id :: input_context.num_input_pipelines]


def shuffled(items: tuple, *, shuffle: bool, seed: int | None,
             epoch: tf.Variable | None) -> tf.data.Dataset:
    """The rows of `items` (equal-length lists), in a new random order each epoch when
    `shuffle`: reshuffled per iteration, or, with `epoch`, permuted by
    `index_shuffle(seed, epoch)` (stateless, so reproducible across restarts)."""
    count = len(items[0])
    if not shuffle:
        return tf.data.Dataset.from_tensor_slices(items)
    if epoch is None:
        return tf.data.Dataset.from_tensor_slices(items).shuffle(
            count, seed=seed, reshuffle_each_iteration=True
        )
    columns = tuple(tf.constant(column) for column in items)

    @unconverted
    def row(position):
        key = tf.stack([tf.constant(seed, tf.int64), tf.cast(epoch.read_value(), tf.int64)])
        index = tf.random.experimental.index_shuffle(position, key, count - 1)
        return tuple(tf.gather(column, index) for column in columns)

    return tf.data.Dataset.range(count).map(row)


def sample(records: Records, count: int, *, seed: int = 0) -> tf.data.Dataset:
    """A uniform random sample of `count` of the records (all of them when there are no
    more), in source order: the same records for the same `seed`. A source that does not
    know its size (TFRecords) is counted first, by reading it once.

    Raises:
      ValueError: `count` is not a positive integer.
    """
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"a sample needs a positive number of images, got {count!r}")
    total = records.num_examples
    if total is None:
        total = int(records.dataset.reduce(0, unconverted(lambda n, _: n + 1)))
    if count >= total:
        return records.dataset
    chosen = np.zeros(total, bool)
    chosen[np.random.default_rng(seed).choice(total, count, replace=False)] = True
    chosen = tf.constant(chosen)
    return records.dataset.enumerate().filter(
        unconverted(lambda position, record: tf.gather(chosen, position))).map(
        unconverted(lambda position, record: record))


# --- TFDS ------------------------------------------------------------------------------


def _open_tfds(spec, *, split, input_context, shuffle_files, seed, epoch) -> Records:
    import tensorflow_datasets as tfds

    options = spec.checked_options("data_dir", "manual_dir", "split")
    try:
        builder = tfds.builder(spec.location, data_dir=options.get("data_dir"))
    except tfds.core.registered.DatasetNotFoundError as error:  # its message lists them all
        raise ValueError(f"tfds:{spec.location}: TFDS has no data set of that name (the list "
                         "is at https://www.tensorflow.org/datasets/catalog; ImageNet is "
                         "'tfds:imagenet2012')") from error
    split = options.get("split", split)
    if split == "test" and not getattr(builder.builder_config, "has_test_annotations", True):
        raise ValueError(f"TFDS dataset {spec.location!r}: the test split has no labels "
                         "(they are not public); hold out the 'validation' split instead")
    if not builder.is_prepared():
        _prepare(builder, spec.location, options.get("manual_dir"))
    try:
        num_examples = builder.info.splits[split].num_examples
    except (KeyError, ValueError) as error:
        raise ValueError(
            f"TFDS dataset {spec.location!r} has splits {sorted(builder.info.splits)}, "
            f"not {split!r}"
        ) from error
    features = builder.info.features
    dataset = builder.as_dataset(
        split=split,
        shuffle_files=shuffle_files,
        decoders={"image": tfds.decode.SkipDecoding()},
        read_config=tfds.ReadConfig(
            input_context=input_context, shuffle_seed=seed, try_autocache=False,
            shuffle_reshuffle_each_iteration=epoch is None,
        ),
    )
    multi_label = "label" not in features and "labels" in features
    names = (features["labels"].feature if multi_label else features["label"]).names
    class_names = tf.constant(names)
    name_key = next((key for key in ("file_name", "image/filename", "image/file_name")
                     if key in features), None)

    @unconverted
    def record(position, example):
        if multi_label:
            label = _voc_targets(example, len(names))
        else:
            label = tf.cast(example["label"], tf.int32)
        if name_key is None:
            record_id = tf.strings.join([f"{spec.location}/{split}:",
                                         tf.strings.as_string(position)])
        elif name_key == "image/file_name":  # Caltech's names repeat across class folders
            record_id = tf.strings.join([tf.gather(class_names, label), example[name_key]],
                                        separator="/")
        else:
            record_id = example[name_key]
        return {"image": example["image"], "label": label, "id": record_id}

    if input_context is not None and input_context.num_input_pipelines > 1:
        num_examples = None  # TFDS shards by file; per-shard counts are not known up front
    return Records(
        dataset.enumerate().map(record, num_parallel_calls=tf.data.AUTOTUNE),
        num_examples,
        tuple(names),
        multi_label,
    )


def _voc_targets(example: dict, num_classes: int) -> tf.Tensor:
    """VOC's classification ground truth, `[classes]` int32: 1 for a class with an object
    not marked difficult, -1 for a class with difficult objects only, else 0."""
    def shown(labels):
        return tf.minimum(tf.reduce_sum(tf.one_hot(labels, num_classes, dtype=tf.int32),
                                        axis=0), 1)

    clear = shown(example.get("labels_no_difficult", example["labels"]))
    return 2 * clear - shown(example["labels"])


def _prepare(builder, name: str, manual_dir: str | None) -> None:
    """Downloads (or reads from `manual_dir`) and prepares a TFDS data set, once."""
    import tensorflow_datasets as tfds

    archives = sorted({info.filename for info in builder.url_infos.values()
                       if info.filename} if builder.url_infos else [])
    if manual_dir is None and builder.MANUAL_DOWNLOAD_INSTRUCTIONS:
        raise ValueError(
            f"TFDS dataset {name!r} is not prepared in {builder.data_dir!r}; "
            "add '?manual_dir=DIR' (for imagenet2012 a folder holding "
            "ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar) to prepare it once"
        )
    where = f"the archives in {manual_dir!r}" if manual_dir else "downloaded archives"
    print(f"keras_vgg.sources: preparing TFDS dataset {name!r} in {builder.data_dir!r} "
          f"from {where} (once)", file=sys.stderr, flush=True)
    try:
        builder.download_and_prepare(
            download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))
    except Exception as error:  # network, checksum or archive errors, from deep in TFDS
        hint = (f"; without a network, put {archives} in a folder and add "
                "'?manual_dir=DIR'" if archives and not manual_dir else "")
        raise ValueError(f"could not prepare TFDS dataset {name!r} from {where}: "
                         f"{type(error).__name__}: {error}{hint}") from error


# --- Folders -----------------------------------------------------------------------------


def _is_listed(name: str) -> bool:
    return not name.startswith(".")


def _class_list(option: str | None, synsets: list[str], root: str) -> list[str]:
    """Class names in label order: sorted synset folders, ImageNet's order, or a file's."""
    if option is None:
        return synsets
    if option == "imagenet":
        names = list(imagenet.synsets())
    else:
        with open(option, encoding="utf8") as file:
            names = [line.strip() for line in file if line.strip()]
    missing = sorted(set(synsets) - set(names))
    if missing:
        raise ValueError(
            f"folder {root!r}: class folders {missing[:5]} are not in the class list "
            f"{option!r}; their images would be lost"
        )
    return names


def _read_labels_file(path: str, file_names: list[str], classes: list[str]) -> list[int]:
    """Labels of `file_names` from `path`: lines 'FILE LABEL', or one LABEL per line in the
    sorted order of the files (TFDS's validation_labels.txt). A label is a class name or an
    integer index."""
    with open(path, encoding="utf8") as file:
        lines = [line.split() for line in file if line.strip()]
    index = {name: position for position, name in enumerate(classes)}

    def label(value: str) -> int:
        if value in index:
            return index[value]
        if value.isdigit() and int(value) < len(classes):
            return int(value)
        if "," in value:
            raise ValueError(f"labels file {path!r} gives one image the labels {value!r}; "
                             "add '&multi_label=true' to the source for several per image")
        raise ValueError(f"labels file {path!r}: unknown label {value!r}")

    if all(len(line) == 2 for line in lines):
        by_name = {os.path.basename(name): label(value) for name, value in lines}
        missing = [name for name in file_names if name not in by_name]
        if missing:
            raise ValueError(f"labels file {path!r} has no label for {missing[:5]}")
        return [by_name[name] for name in file_names]
    if all(len(line) == 1 for line in lines) and len(lines) == len(file_names):
        return [label(line[0]) for line in lines]
    if all(len(line) == 1 for line in lines) and all(_VAL_INDEX.match(n) for n in file_names):
        # ILSVRC2012_val_00000042.JPEG is line 42 of the 50,000-line validation file.
        lines_needed = {name: int(_VAL_INDEX.match(name).group(1)) for name in file_names}
        beyond = [name for name, line in lines_needed.items() if line > len(lines)]
        if beyond:
            raise ValueError(f"labels file {path!r} has {len(lines)} lines; {beyond[:5]} need "
                             "the lines their numbers name")
        return [label(lines[lines_needed[name] - 1][0]) for name in file_names]
    raise ValueError(
        f"labels file {path!r}: expected lines 'FILE LABEL', or one label per line for the "
        f"{len(file_names)} files in sorted order"
    )


def _tfds_validation_labels() -> str:
    import tensorflow_datasets as tfds

    return os.fspath(tfds.core.tfds_path("datasets/imagenet2012/validation_labels.txt"))


def _read_label_sets(path: str, file_names: list[str], classes: list[str] | None
                     ) -> tuple[list[list[int]], list[str]]:
    """Multi-label targets `[files][classes]` (1 shown, 0 not) from lines
    'FILE LABEL,LABEL,...' ('FILE' alone: no class shown), and the classes: `classes`, or
    the sorted labels the file uses."""
    with open(path, encoding="utf8") as file:
        lines = [line.split() for line in file if line.strip()]
    malformed = [" ".join(line) for line in lines if len(line) > 2]
    if malformed:
        raise ValueError(f"labels file {path!r}: expected lines 'FILE LABEL,LABEL,...' "
                         f"(commas, no spaces), got {malformed[:3]}")
    by_name = {os.path.basename(line[0]): [label for label in "".join(line[1:]).split(",")
                                           if label] for line in lines}
    missing = [name for name in file_names if name not in by_name]
    if missing:
        raise ValueError(f"labels file {path!r} has no line for {missing[:5]}")
    used = sorted({label for name in file_names for label in by_name[name]})
    classes = used if classes is None else classes
    unknown = sorted(set(used) - set(classes))
    if unknown:
        raise ValueError(f"labels file {path!r}: labels {unknown[:5]} are not in the class "
                         "list")
    index = {name: position for position, name in enumerate(classes)}
    targets = [[0] * len(classes) for _ in file_names]
    for row, name in zip(targets, file_names, strict=True):
        for label in by_name[name]:
            row[index[label]] = 1
    return targets, classes


def _open_folder(spec, *, split, input_context, shuffle_files, seed, epoch) -> Records:
    options = spec.checked_options("classes", "labels", "multi_label", "boxes")
    multi_label = options.get("multi_label", "false").lower()
    if multi_label not in ("true", "false"):
        raise ValueError(f"folder {spec.location!r}: multi_label must be true or false, got "
                         f"{multi_label!r}")
    multi_label = multi_label == "true"
    root = spec.location
    if not os.path.isdir(root):
        raise ValueError(f"image folder {root!r} does not exist")
    entries = sorted(name for name in os.listdir(root) if _is_listed(name))
    if not entries:
        raise ValueError(f"image folder {root!r} is empty")
    synsets = [name for name in entries if os.path.isdir(os.path.join(root, name))]
    if multi_label:
        if synsets or "labels" not in options:
            raise ValueError(f"folder {root!r}: multi-label images go in one flat folder, "
                             "their classes in '?labels=FILE' (lines 'FILE LABEL,LABEL,...')")
        paths = [os.path.join(root, name) for name in entries]
        class_list = options.get("classes")
        labels, classes = _read_label_sets(
            options["labels"], entries,
            None if class_list is None else _class_list(class_list, [], root))
    elif synsets:  # root/<class>/<image>
        classes = _class_list(options.get("classes"), synsets, root)
        index = {name: position for position, name in enumerate(classes)}
        paths, labels = [], []
        ignored = [os.path.join(root, name) for name in entries if name not in synsets]
        for synset in synsets:
            folder = os.path.join(root, synset)
            for name in sorted(os.listdir(folder)):
                if not _is_listed(name):
                    continue
                path = os.path.join(folder, name)
                if os.path.isfile(path):
                    paths.append(path)
                    labels.append(index[synset])
                else:
                    ignored.append(path)
        if ignored:  # not images of a class: say so rather than drop them silently
            print(f"keras_vgg.sources: folder {root!r}: ignored {len(ignored)} entries that are "
                  f"not files in a class folder: {ignored}", file=sys.stderr)
        empty = sorted(set(synsets) - {classes[label] for label in labels})
        if empty:  # a class no image teaches would still take a label and an output
            raise ValueError(
                f"folder {root!r}: class folders {empty} hold no images; remove them or add "
                "their images")
    else:  # flat folder + labels file
        classes = _class_list(options.get("classes", "imagenet"), [], root)
        labels_file = options.get("labels")
        if labels_file is None and entries and all(_VAL_INDEX.match(n) for n in entries):
            labels_file = _tfds_validation_labels()
        if labels_file is None:
            raise ValueError(
                f"folder {root!r} has no class subfolders; give its labels with "
                "'?labels=FILE' (lines 'FILE LABEL' or one label per sorted file)"
            )
        paths = [os.path.join(root, name) for name in entries]
        labels = _read_labels_file(labels_file, entries, classes)
    if not paths:
        raise ValueError(f"image folder {root!r} holds no images")
    if "boxes" in options:
        if multi_label:
            raise ValueError(f"folder {root!r}: boxes are for single-label data")
        return _with_boxes(root, options["boxes"], paths, labels, classes,
                           input_context=input_context, shuffle_files=shuffle_files,
                           seed=seed, epoch=epoch)
    pairs = _shard(list(zip(paths, labels, strict=True)), input_context)
    paths = [path for path, _ in pairs]
    labels = [label for _, label in pairs]
    dataset = shuffled((paths, labels, _file_sizes(paths)), shuffle=shuffle_files, seed=seed,
                       epoch=epoch)
    dataset = dataset.map(unconverted(lambda path, label, size: {
        "path": path, "label": label, "id": path, "bytes": size}))
    return Records(dataset, len(paths), tuple(classes), multi_label, streamed=False)


def _with_boxes(root, location, paths, labels, classes, *, input_context, shuffle_files,
                seed, epoch) -> Records:
    """The folder's images that have boxes of their own class in `location`
    (`keras_vgg.annotations`), with those boxes; the others are counted on stderr."""
    table = annotations.read(location)
    kept = []
    for path, label in zip(paths, labels, strict=True):
        stem = os.path.splitext(os.path.basename(path))[0]
        corners = [box for name, box in table.get(stem, []) if name == classes[label]]
        if corners:
            kept.append((path, label, corners))
    if not kept:
        raise ValueError(f"folder {root!r}: no image has a box of its class in {location!r} "
                         "(boxes are matched by file name without extension, and class id)")
    if len(kept) < len(paths):
        print(f"keras_vgg.sources: folder {root!r}: {len(paths) - len(kept)} of {len(paths)} "
              f"images have no box of their class in {location!r}; localisation uses the "
              f"other {len(kept)}", file=sys.stderr)
    kept = _shard(kept, input_context)
    most = max(len(corners) for _, _, corners in kept)
    padded = [corners + [(0.0, 0.0, 0.0, 0.0)] * (most - len(corners))
              for _, _, corners in kept]
    kept_paths = [path for path, _, _ in kept]
    columns = (kept_paths, [label for _, label, _ in kept], padded,
               [len(corners) for _, _, corners in kept], _file_sizes(kept_paths))
    dataset = shuffled(columns, shuffle=shuffle_files, seed=seed, epoch=epoch).map(
        unconverted(lambda path, label, boxes, count, size: {
            "path": path, "label": label, "id": path, "bytes": size,
            "boxes": tf.cast(boxes, tf.float32), "box_count": count}))
    return Records(dataset, len(kept), tuple(classes), boxes=True, streamed=False)


# --- TFRecords ---------------------------------------------------------------------------

# A TFRecord record's framing: its length (8 bytes) and the length's CRC (4) before the
# data, the data's CRC (4) after.
_RECORD_FRAMING_BYTES = 16


def damaged_record(pattern: str) -> tuple[str, int, str] | None:
    """The first damaged record among the TFRecord files `pattern` matches: `(file, byte
    offset of the record, TensorFlow's reason)` (a CRC mismatch, a truncated record), or
    None when every record reads. Reads every file through."""
    for path in sorted(glob.glob(pattern)):
        offset = 0
        try:
            for record in tf.data.TFRecordDataset(path).as_numpy_iterator():
                offset += len(record) + _RECORD_FRAMING_BYTES
        except tf.errors.DataLossError as error:
            return path, offset, error.message.split("\n")[0]
    return None


@contextlib.contextmanager
def naming_damaged_records(*specs: str | None):
    """Turns TensorFlow's DataLossError from reading `specs`' TFRecord files, which names
    neither file nor record, into a ValueError naming both (found by reading the files
    again)."""
    try:
        yield
    except tf.errors.DataLossError as error:
        for spec in specs:
            if not spec or not spec.startswith("tfrecord:"):
                continue
            found = damaged_record(SourceSpec.parse(spec).location)
            if found:
                path, offset, reason = found
                raise ValueError(
                    f"TFRecord file {path} is damaged at the record starting at byte "
                    f"{offset} ({reason}); remove or rewrite that file") from error
        raise


def _label_ids(num_classes: int) -> tuple[str, ...]:
    """TFRecord labels have no names: ImageNet's synsets for its 1000 classes (the order
    the ImageNet conversion scripts number them in), else the labels themselves."""
    if num_classes == imagenet.NUM_CLASSES:
        return imagenet.synsets()
    return tuple(str(label) for label in range(num_classes))


def _open_tfrecord(spec, *, split, input_context, shuffle_files, seed, epoch) -> Records:
    files = sorted(glob.glob(spec.location))
    if not files:
        raise ValueError(f"no TFRecord files match {spec.location!r}")
    spec.checked_options("label_offset", "classes")
    offset = spec.integer_option("label_offset", TFRECORD_LABEL_OFFSET, minimum=-(2**31))
    num_classes = spec.integer_option("classes", imagenet.NUM_CLASSES, minimum=1)
    by_file = input_context is not None and len(files) >= input_context.num_input_pipelines
    if by_file:
        files = _shard(files, input_context)
    features = {
        # A record without an image reads as empty bytes, which the guard skips and names.
        "image/encoded": tf.io.FixedLenFeature([], tf.string, default_value=""),
        "image/class/label": tf.io.FixedLenFeature([], tf.int64),
        "image/filename": tf.io.FixedLenFeature([], tf.string, default_value=""),
    }

    @unconverted
    def read(path):
        @unconverted
        def record(position, serialized):
            example = tf.io.parse_single_example(serialized, features)
            label = tf.cast(example["image/class/label"], tf.int32) - offset
            checks = [
                tf.debugging.assert_less(
                    label, num_classes,
                    message=f"TFRecord label out of range (label_offset={offset}, "
                            f"classes={num_classes}); 0-based records need '?label_offset=0'",
                ),
                tf.debugging.assert_non_negative(
                    label,
                    message=f"TFRecord label below 0 after label_offset={offset}; 0-based "
                            "records need '?label_offset=0'",
                ),
            ]
            with tf.control_dependencies(checks):
                label = tf.identity(label)
            name = example["image/filename"]
            record_id = tf.where(
                tf.strings.length(name) > 0,
                name,
                tf.strings.join([path, tf.strings.as_string(position)], separator=":"),
            )
            return {"image": example["image/encoded"], "label": label, "id": record_id}

        return tf.data.TFRecordDataset(path).enumerate().map(record)

    # Record-level sharding needs every pipeline to read the files in the same order.
    shuffle_files = shuffle_files and (by_file or input_context is None
                                       or input_context.num_input_pipelines == 1)
    dataset = shuffled((files,), shuffle=shuffle_files, seed=seed, epoch=epoch).interleave(
        read, cycle_length=min(len(files), 16), num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    if input_context is not None and input_context.num_input_pipelines > 1 and not by_file:
        dataset = dataset.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
    return Records(dataset, None, _label_ids(num_classes))

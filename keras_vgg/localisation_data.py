"""Box-aware tf.data pipelines for localisation (Appendix A): the classification
pipeline's geometry (`keras_vgg.image_ops.train_crop`), with each image's ground-truth boxes
carried through it. Sources need boxes (`folder:...?boxes=...`, `keras_vgg.sources`).

Training: the crop window is drawn as for classification (S, then a position); the boxes
are mapped into it (`keras_vgg.boxes.to_window`), mirrored with the image, and left alone
by the colour shift. The target is the box of the image's class with the largest area
inside the crop, whole: its coordinates go beyond [0, 1] where the object extends beyond
the crop, so that the net learns the object's extent, which both test protocols score
against. (A target clipped to the crop could never reach IoU 0.5 with an object larger
than the centre crop.) A crop that shows no part of any box (a small object and a large S)
keeps its place in the batch with weight 0: it teaches nothing about boxes, and dropping it
would make batches uneven across replicas.

Evaluation (Appendix A.2's first protocol): rescale to Q, centre crop; the same target
rule, and the crop's window in the original image, so that predictions map back to it.

Elements: `(images [b, crop, crop, 3] float32, targets [b, 6])`, targets as
`keras_vgg.localisation` defines them; with `with_windows`, also the windows `[b, 4]`
(`[y, x, height, width]`, original pixels), the boxes `[b, max boxes, 4]` (original
pixels), their counts `[b]`, and the ids.
"""

from __future__ import annotations

from collections.abc import Sequence

from keras_vgg import boxes, data, guard, image_ops, sources
from keras_vgg.requires_tensorflow import tf, unconverted


def target(record: dict, window: tf.Tensor, mirrored: tf.Tensor | bool = False) -> tf.Tensor:
    """`[6]` (label, centre box in the window, weight) for a record with boxes, seen through
    `window` (mirrored or not)."""
    real = record["boxes"][: record["box_count"]]
    corners, visible = boxes.to_window(real, window)
    best = corners[tf.argmax(visible)]
    best = tf.cond(tf.convert_to_tensor(mirrored), lambda: boxes.flip(best), lambda: best)
    weight = tf.cast(tf.reduce_max(visible) > 0, tf.float32)
    label = tf.cast(record["label"], tf.float32)
    return tf.concat([[label], boxes.to_centre(best), [weight]], axis=0)


def box_train_transform(record: dict, *, scale: tuple[int, int], crop_size: tuple[int, int],
                    flip: bool = True) -> dict:
    """A record with boxes -> `{"image": crop, "label": target}`: classification's training
    crop (`image_ops.train_crop`), with the boxes through the same geometry."""
    image, window, mirrored = image_ops.train_crop(
        record["image"], record["seed"], scale=scale, crop_size=crop_size, flip=flip)
    return {"image": image, "label": target(record, window, mirrored)}


def centre_window(image_shape: tf.Tensor, test_scale: int, crop_size: tuple[int, int]
                  ) -> tf.Tensor:
    """The original-image window `[y, x, height, width]` (float32) that rescaling to Q and
    `image_ops.central_crop` keep."""
    shape = tf.cast(image_shape[:2], tf.float32)
    factor = test_scale / tf.reduce_min(shape)
    rescaled = tf.maximum(tf.round(shape * factor), 1.0)
    crop = tf.constant(crop_size, tf.float32)
    offset = tf.floor((rescaled - crop) / 2)
    per_axis = rescaled / shape  # the resize's own factor, after rounding, per axis
    return tf.concat([offset / per_axis, crop / per_axis], axis=0)


def centre_transform(record: dict, *, test_scale: int, crop_size: tuple[int, int]) -> dict:
    """A record with boxes -> `{"image": centre crop at Q, "label": target, "window"}`."""
    image = image_ops.decode_image(record["image"])
    crop = image_ops.central_crop(image_ops.rescale_shorter_side(image, test_scale), crop_size)
    crop.set_shape([*crop_size, 3])
    window = centre_window(tf.shape(image), test_scale, crop_size)
    return {"image": crop, "label": target(record, window), "window": window}


def _require_boxes(source: str) -> None:
    """Raises ValueError unless the source spec asks for boxes (only folders carry them),
    before anything is listed or read."""
    spec = sources.SourceSpec.parse(source)
    if spec.kind != "folder" or "boxes" not in spec.options:
        raise ValueError(f"{source!r} has no boxes: localisation needs a folder source with "
                         "'?boxes=XML_FOLDER_OR_LOC_CSV' (keras_vgg.sources)")


def _boxed_records(source: str, split: str, **options) -> sources.Records:
    _require_boxes(source)
    return sources.open_source(source, split=split, **options)


def _batches(records: tf.data.Dataset, batch_size: int, *, preprocessing: str,
             with_windows: bool = False) -> tf.data.Dataset:
    @unconverted
    def output(record):
        image = data.preprocessed(record["image"], preprocessing)
        if with_windows:
            return (image, record["label"], record["window"], record["boxes"],
                    record["box_count"], record["id"])
        return image, record["label"]

    return data.prefetched(
        records.batch(batch_size).map(output, num_parallel_calls=tf.data.AUTOTUNE))


def train_dataset(source: str, **options) -> tf.data.Dataset:
    """One epoch of augmented localisation batches, `(images, targets)`: `data.train_dataset`
    (and its options) with the boxes through the same geometry (`box_train_transform`)."""
    _require_boxes(source)
    return data.train_dataset(source, record_transform=box_train_transform, **options)


def centre_dataset(
    source: str,
    *,
    test_scale: int,
    crop_size: int | Sequence[int] = image_ops.CROP_SIZE,
    batch_size: int = 32,
    split: str = "validation",
    preprocessing: str = "caffe",
    input_context: tf.distribute.InputContext | None = None,
    with_windows: bool = False,
) -> tf.data.Dataset:
    """Centre crops at Q with their targets, in source order, each image once."""
    crop = image_ops.parse_test_crop_size(crop_size, test_scale)
    records = _boxed_records(source, split, input_context=input_context)
    transformed = guard.map_skipping_undecodable(
        records.dataset,
        lambda record: centre_transform(record, test_scale=test_scale, crop_size=crop),
        records_can_fail=records.streamed)
    if input_context is not None:
        batch_size = input_context.get_per_replica_batch_size(batch_size)
    return _batches(transformed, batch_size, preprocessing=preprocessing,
                    with_windows=with_windows)


def whole_images(source: str, *, split: str = "validation") -> tf.data.Dataset:
    """Whole decoded images with their boxes, for the dense protocol, in source order, one
    per element: `(image [1, h, w, 3] uint8, label, boxes [max boxes, 4] (original pixels),
    box count, id)`."""
    records = _boxed_records(source, split)
    transformed = guard.map_skipping_undecodable(
        records.dataset, lambda record: {"image": image_ops.decode_image(record["image"])},
        records_can_fail=records.streamed)
    return transformed.map(unconverted(lambda record: (
        record["image"][None], record["label"], record["boxes"], record["box_count"],
        record["id"])))

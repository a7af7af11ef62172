"""The guard of every input pipeline: a transform of each record that skips, and names,
the records it cannot use instead of stopping the pipeline or losing them silently.

tf.data has no try/except: an error in a map ends the epoch, and `ignore_errors` drops the
failing element without saying which it was. So records go through the transform in groups
of `GROUP_SIZE`: each group is a small dataset of its own, whose failures `ignore_errors`
drops, and the positions in the group that came through name the records that did not. A
dataset per record would say the same more simply, but building one costs more than half
as much as decoding the image; a group shares that cost between its records, and yields one
batch (empty when every record failed), so the groups' order is the records' order.
Images beyond the bounds (`image_ops.image_problem`) are not decoded at all: a one-pixel
image goes through the transform in their place, and they are dropped with the reason.

Each skipped record is printed to stderr on a line of its own, with its id, the reason and
the number this iterator has skipped so far:

    keras_vgg: skipped n01440764/x.JPEG: unreadable or undecodable file (3 skipped so far)

Everything runs inside the dataset's graph (no Python callbacks), so a pipeline sharded
across replicas or shipped to tf.data service workers is guarded where it runs, and every
record is transformed, or named, exactly once.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from keras_vgg import image_ops, sources
from keras_vgg.requires_tensorflow import tf

GROUP_SIZE = 16
UNREADABLE = "unreadable or undecodable file"
_PROBLEM, _SLOT = "problem", "slot"


def escaped(names: tf.Tensor) -> tf.Tensor:
    """`names` with backslashes and control characters escaped (a newline as \\n), so that a
    file name cannot forge a line of the log."""
    names = tf.strings.regex_replace(names, r"\\", r"\\\\")
    for character, escape in (("\n", r"\\n"), ("\r", r"\\r"), ("\t", r"\\t")):
        names = tf.strings.regex_replace(names, character, escape)
    return tf.strings.regex_replace(names, r"[[:cntrl:]]", "?")


def map_skipping_undecodable(
    records: tf.data.Dataset,
    transform: Callable[[dict], tf.Tensor | dict],
    *,
    max_pixels: int = image_ops.MAX_PIXELS,
    group_size: int = GROUP_SIZE,
    deterministic: bool = True,
) -> tf.data.Dataset:
    """`record["image"] = transform(record)` for each usable record, in groups.

    `records` are sources' records (`sources.encoded_image` reads their encoded image); the
    transform gets the record with `"image"` holding the encoded bytes, and returns the new
    image, or a dict of the fields to set. Each element of the result is a batch of the 0
    to `group_size` records of one group that were kept, in order; `Dataset.rebatch` or
    `unbatch` it. Transforms whose outputs differ in shape between records need
    `group_size=1`.

    A record is skipped, and named on stderr, when its file is larger than any image
    within the bounds (it is not read), its image is beyond the bounds (with the reason; it
    is not decoded), or when reading or transforming it fails (a missing,
    vanished, unreadable, corrupt, truncated or non-image file). Ids need not be unique.
    """

    def attempt(record, slot):
        contents = sources.encoded_image(record)
        too_large = sources.file_problem(record)
        problem = tf.cond(tf.equal(too_large, ""),
                          lambda: image_ops.image_problem(contents, max_pixels),
                          lambda: too_large)
        usable = tf.where(tf.equal(problem, ""), contents, image_ops.ONE_PIXEL_PNG)
        outputs = transform({**record, "image": usable})
        fields = outputs if isinstance(outputs, dict) else {"image": outputs}
        return {**record, **fields, _PROBLEM: problem, _SLOT: slot}

    def attempt_group(group):
        """The group's records that did not fail: always one batch, empty when all did."""
        count = tf.size(group["id"])
        attempted = (tf.data.Dataset.from_tensor_slices((group, tf.range(count)))
                     .map(attempt).ignore_errors().batch(group_size))
        nothing = tf.nest.map_structure(
            lambda spec: tf.zeros([0 if size is None else size for size in spec.shape],
                                  spec.dtype),
            attempted.element_spec)
        return (attempted.concatenate(tf.data.Dataset.from_tensors(nothing)).take(1)
                .map(lambda batch: (batch, group["id"])))

    def name_the_skipped(skipped_before, attempted):
        batch, group_ids = attempted
        batch = dict(batch)
        slots, problems = batch.pop(_SLOT), batch.pop(_PROBLEM)
        came_through = tf.reduce_any(
            tf.equal(tf.range(tf.size(group_ids))[:, None], slots[None, :]), axis=1)
        beyond_bounds = tf.not_equal(problems, "")
        failed_ids = tf.boolean_mask(group_ids, tf.logical_not(came_through))
        names = escaped(tf.concat([failed_ids, tf.boolean_mask(batch["id"], beyond_bounds)], 0))
        reasons = tf.concat([tf.fill(tf.shape(failed_ids), UNREADABLE),
                             tf.boolean_mask(problems, beyond_bounds)], 0)
        skipped = skipped_before + tf.range(1, tf.size(names, tf.int64) + 1)
        lines = tf.strings.join([
            "keras_vgg: skipped ", names, ": ", reasons, " (",
            tf.strings.as_string(skipped), " skipped so far)"])
        printed = tf.cond(tf.size(names) > 0, lambda: tf.print(
            tf.strings.reduce_join(lines, separator="\n"), output_stream=sys.stderr),
            tf.no_op)
        with tf.control_dependencies([printed]):
            kept = tf.cond(  # copies the batch only when it must
                tf.reduce_any(beyond_bounds),
                lambda: {key: tf.boolean_mask(value, tf.logical_not(beyond_bounds))
                         for key, value in batch.items()},
                lambda: {key: tf.identity(value) for key, value in batch.items()})
        return skipped_before + tf.size(names, tf.int64), kept

    return (
        records.batch(group_size)
        .interleave(attempt_group, cycle_length=tf.data.AUTOTUNE,
                    num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic)
        .scan(tf.constant(0, tf.int64), name_the_skipped)
    )

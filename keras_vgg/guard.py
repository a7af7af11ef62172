"""The guard of every input pipeline: a transform of each record that skips, and names,
the records it cannot use instead of stopping the pipeline or losing them silently.

tf.data has no try/except: an error in a map ends the epoch, and `ignore_errors` drops the
failing element without saying which it was. So the records go through the transform in
windows of `WINDOW`, and after each window comes a marker: an element that goes through
the transform unread, on a one-pixel image, so it cannot fail, and carries the ids of the
window's records. A scan after `ignore_errors` notes which of the window's records came
through; at the marker it names the others. The common case, where every record is good,
pays for a marker per window and a few integer operations per record.

Where the transform runs depends on whether iterating the records can fail:
  - records listed in memory (folders: a path per file, read by the transform) cannot, so
    one flat parallel map transforms them all, `ignore_errors` after it;
  - records streamed from files (TFRecord, TFDS) can: a damaged file must stop the
    pipeline, not be skipped, and `ignore_errors` would swallow its error with the rest.
    Each window is then a small dataset of its own, transformed and `ignore_errors`-ed
    inside, so the errors of the stream around it still surface.
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
from keras_vgg.requires_tensorflow import tf, unconverted

# Records per marker: a failed record is named at most this many records after it; the
# records that came through a window are bits of one int64.
WINDOW = 64
UNREADABLE = "unreadable or undecodable file"
_RECORD, _MARKER, _SLOT, _WINDOW_IDS, _PROBLEM = "record", "marker", "slot", "window_ids", "problem"


def escaped(names: tf.Tensor) -> tf.Tensor:
    """`names` with backslashes and control characters escaped (a newline as \\n), so that a
    file name cannot forge a line of the log."""
    names = tf.strings.regex_replace(names, r"\\", r"\\\\")
    for character, escape in (("\n", r"\\n"), ("\r", r"\\r"), ("\t", r"\\t")):
        names = tf.strings.regex_replace(names, character, escape)
    return tf.strings.regex_replace(names, r"[[:cntrl:]]", "?")


def _named(skipped_before: tf.Tensor, names: tf.Tensor, reasons: tf.Tensor) -> tf.Tensor:
    """Prints a line for each skipped record (`names` `[n]`, `reasons` `[n]` or scalar);
    returns the count of records skipped so far. Call it only when `names` is not empty."""
    skipped = skipped_before + tf.range(1, tf.size(names, tf.int64) + 1)
    lines = tf.strings.join(["keras_vgg: skipped ", escaped(names), ": ", reasons, " (",
                             tf.strings.as_string(skipped), " skipped so far)"])
    printed = tf.print(tf.strings.reduce_join(lines, separator="\n"), output_stream=sys.stderr)
    with tf.control_dependencies([printed]):
        return skipped_before + tf.size(names, tf.int64)


# The guard's own functions, as `keras_vgg.data`'s: tf.functions of module scope, traced
# once per process for each record structure (and `max_pixels`), reused by every pipeline.
@tf.function(autograph=False, reduce_retracing=True)
def _usable_image(record: dict, marker: tf.Tensor, max_pixels: int
                  ) -> tuple[tf.Tensor, tf.Tensor]:
    """`(encoded image, problem)` of a record: its file's bytes and "" when it is within the
    bounds; else the one-pixel image in their place, and the reason. A marker's record is
    not read: it gets the one-pixel image, and its problem is not looked at."""
    contents = sources.encoded_image(record, read=tf.logical_not(marker))
    too_large = sources.file_problem(record)
    problem = tf.where(tf.equal(too_large, ""),
                       image_ops.image_problem(contents, max_pixels), too_large)
    usable = tf.where(tf.logical_or(marker, tf.not_equal(problem, "")),
                      image_ops.ONE_PIXEL_PNG, contents)
    return usable, problem


@tf.function(autograph=False, reduce_retracing=True)
def _name_the_skipped(state, element):
    """The scan after `ignore_errors`: names a window's lost records at its marker (see the
    module's docstring); returns the new `(skipped so far, came_through)` and `(record,
    keep)`."""
    skipped_before, came_through = state  # came_through: bit k for the window's k-th
    record = dict(element[_RECORD])
    problem = record.pop(_PROBLEM)

    def at_marker():
        ids = element[_WINDOW_IDS]
        slots = tf.range(tf.size(ids, tf.int64), dtype=tf.int64)
        lost = tf.equal(tf.bitwise.bitwise_and(
            tf.bitwise.right_shift(came_through, slots), 1), 0)
        skipped = tf.cond(
            tf.reduce_any(lost),
            lambda: _named(skipped_before, tf.boolean_mask(ids, lost), UNREADABLE),
            lambda: skipped_before)
        return skipped, tf.constant(0, tf.int64)

    def at_record():
        skipped = tf.cond(tf.equal(problem, ""), lambda: skipped_before,
                          lambda: _named(skipped_before, record["id"][None], problem))
        return skipped, tf.bitwise.bitwise_or(
            came_through, tf.bitwise.left_shift(tf.constant(1, tf.int64), element[_SLOT]))

    state = tf.cond(element[_MARKER], at_marker, at_record)
    keep = tf.logical_and(tf.logical_not(element[_MARKER]), tf.equal(problem, ""))
    return state, (record, keep)


def map_skipping_undecodable(
    records: tf.data.Dataset,
    transform: Callable[[dict], tf.Tensor | dict],
    *,
    records_can_fail: bool = True,
    max_pixels: int = image_ops.MAX_PIXELS,
    window: int = WINDOW,
) -> tf.data.Dataset:
    """`record["image"] = transform(record)` for each usable record: one record an
    element, in the records' order.

    `records` are sources' records (`sources.encoded_image` reads their encoded image); the
    transform gets the record with `"image"` holding the encoded bytes, and returns the new
    image, or a dict of the fields to set. Outputs may differ in shape between records.
    `records_can_fail`: whether iterating `records` can raise (`sources.Records.streamed`);
    False lets the guard transform them in one flat map, and would swallow such errors.

    A record is skipped, and named on stderr, when its file is larger than any image
    within the bounds (it is not read), its image is beyond the bounds (with the reason; it
    is not decoded), or when reading or transforming it fails (a missing, vanished,
    unreadable, corrupt, truncated or non-image file): the last at most `window` records
    later. Ids need not be unique.
    """
    if not 1 <= window <= 64:
        raise ValueError(f"window must be between 1 and 64 records, got {window}")

    @unconverted
    def attempt(element):
        """A record through the transform; a marker through it too, unread, on the
        one-pixel image, so that it cannot fail. (A branch around the transform, to skip it
        for markers, made the pipeline 7% slower.)"""
        record = element[_RECORD]
        usable, problem = _usable_image(record, element[_MARKER], max_pixels)
        outputs = transform({**record, "image": usable})
        fields = outputs if isinstance(outputs, dict) else {"image": outputs}
        return {**element, _RECORD: {**record, **fields, _PROBLEM: problem}}

    @unconverted
    def marked(records_of_window):
        """A window's records, each with its slot, then its marker."""
        count = tf.size(records_of_window["id"])
        rows = tf.data.Dataset.from_tensor_slices({
            _RECORD: records_of_window, _MARKER: tf.zeros([count], tf.bool),
            _SLOT: tf.range(count, dtype=tf.int64), _WINDOW_IDS: tf.zeros([count, 0], tf.string)})
        marker = tf.data.Dataset.from_tensors({
            _RECORD: tf.nest.map_structure(lambda value: value[-1], records_of_window),
            _MARKER: True, _SLOT: tf.cast(count, tf.int64), _WINDOW_IDS: records_of_window["id"]})
        return rows.concatenate(marker)

    windows = records.batch(window)
    if records_can_fail:
        # Windows transformed in parallel, each one's elements kept together and in order.
        stream = windows.interleave(
            unconverted(lambda records_of_window:
                        marked(records_of_window).map(attempt).ignore_errors()),
            cycle_length=tf.data.AUTOTUNE, block_length=window + 1,
            num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    else:
        stream = (windows.flat_map(marked)
                  .map(attempt, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
                  .ignore_errors())
    return (stream.scan((tf.constant(0, tf.int64), tf.constant(0, tf.int64)), _name_the_skipped)
            .filter(unconverted(lambda record, keep: keep))
            .map(unconverted(lambda record, keep: record)))

"""A variable-size SavedModel for TF-Serving: dense evaluation (Sect. 3.2) behind two
signatures, in TF-Serving's directory layout, with warmup requests.

    <export_base>/<model_name>/<version>/saved_model.pb
                                        /variables/
                                        /assets.extra/tf_serving_warmup_requests
                                        /assets.extra/keras_vgg_serving_options.json

Signatures (the input names are TF Model Garden's):
  serving_default  `images`: `[batch, height, width, 3]` uint8 (or float32 in [0, 255])
                   pixels, any height and width, one size per request.
  image_bytes      `image_bytes`: `[batch]` encoded JPEG/PNG/GIF/BMP/WebP strings, each image its
                   own size (over REST: `{"b64": ...}`).
Both rescale each image so its shorter side is Q, apply the weights' preprocessing, run the
fully-convolutional net and average its class scores over space (optionally also over the
mirror image), all inside the graph: a client sends raw pixels or files. Outputs:
  probabilities      `[batch, classes]` float32
  top_k_ids          `[batch, k]` int32, best first
  top_k_names        `[batch, k]` string
  top_k_probabilities `[batch, k]` float32
  score_map          `[batch, H, W, classes]` pre-softmax scores (serving_default only, and
                     only when exported with `score_map=True`; the unmirrored image's)
  boxes              `[batch, k, 4]` float32, a box for each of the top-k classes,
                     `(x_min, y_min, x_max, y_max)` in the request image's pixels (only when
                     exported with a localisation net, `keras_vgg.localisation`)

Boxes: the localisation net runs densely beside the classifier; for each top-k class, the
box of the position where the class scores highest is averaged with every position's box
that overlaps it by IoU > 0.5 (the first cluster of the greedy merge that evaluation runs,
`keras_vgg.localisation_eval`, grown against its seed box: one pass, in the graph).

The SavedModel holds only TensorFlow functions and variables: `tf.saved_model.load` reads it
without this package (or Keras) installed.

Q and class names are the net's (`keras_vgg.nets`): a training run's single-scale test scale
(S, or 384 for S in [256, 512]) and its classes; weights' Q as their source records it, and
ImageNet's names by default. `top_k` is 5, or every class of a net with fewer. Each export
rewrites `<export_base>/models.config`, TF-Serving's config serving every model there.
Bad requests fail with INVALID_ARGUMENT and a message naming the problem: an
empty batch, non-finite float pixels, an aspect ratio over `image_ops.MAX_ASPECT_RATIO`, or
more pixels than `max_pixels` (default 64 megapixels), which `image_bytes` reads from each
file's header before decoding it. Server-side batching of images of different sizes would
pad them and change the scores (`export/README.md`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import logging
import os
import re
import shutil
from collections.abc import Sequence

import keras
import numpy as np
from absl import logging as absl_logging

from keras_vgg import (
    boxes,
    configs,
    files,
    image_ops,
    imagenet,
    inference,
    localisation,
    nets,
    runs,
)
from keras_vgg.requires_tensorflow import tf

SIGNATURE_PIXELS = "serving_default"
SIGNATURE_BYTES = "image_bytes"
INPUT_PIXELS = "images"
INPUT_BYTES = "image_bytes"
OUTPUTS = ("probabilities", "top_k_ids", "top_k_names", "top_k_probabilities", "score_map")
BOXES = "boxes"  # with a localisation net
WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")
# The export's ServingOptions and classes, for evaluating and predicting with the SavedModel
# (TF-Serving ignores them).
OPTIONS_FILE = os.path.join("assets.extra", "keras_vgg_serving_options.json")
CLASSES_FILE = os.path.join("assets.extra", "keras_vgg_classes.json")
# How many best classes an answer names, unless the net has fewer.
DEFAULT_TOP_K = 5


@dataclasses.dataclass(frozen=True)
class ServingOptions:
    """What the exported graph does besides the network.

    Attributes:
      test_scale: Q, the shorter side each image is rescaled to (px).
      preprocessing: the weights' preprocessing ("caffe", "torch" or "tf").
      top_k: how many best classes to name; None: `DEFAULT_TOP_K`, or every class of a
        net with fewer.
      flip: also run the mirror image and average the two posteriors (2x compute).
      score_map: add the class score map to `serving_default`'s outputs.
      pixel_dtype: `serving_default`'s input dtype, "uint8" or "float32" (values 0-255).
      max_pixels: the largest image accepted, in pixels; `image_bytes` reads the size from
        each file's header before decoding it. Images are also refused beyond
        `image_ops.MAX_ASPECT_RATIO` (a 1x10000 image would make a Q x 10000Q activation map).
    """

    test_scale: int = image_ops.TEST_SCALE
    preprocessing: str = "caffe"
    top_k: int | None = None
    flip: bool = False
    score_map: bool = False
    pixel_dtype: str = "uint8"
    max_pixels: int = image_ops.MAX_PIXELS

    def __post_init__(self):
        def positive(value) -> bool:
            return isinstance(value, int) and not isinstance(value, bool) and value > 0

        for name in ("test_scale", "max_pixels", "top_k"):
            value = getattr(self, name)
            if not (positive(value) or (name == "top_k" and value is None)):
                raise ValueError(f"{name} must be a positive integer, got {str(value)[:60]!r}")
        for name in ("flip", "score_map"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false, got "
                                 f"{str(getattr(self, name))[:60]!r}")
        if self.preprocessing not in imagenet.PREPROCESSING_MODES:
            raise ValueError(f"unknown preprocessing {str(self.preprocessing)[:60]!r}; expected "
                             f"one of {imagenet.PREPROCESSING_MODES}")
        if self.pixel_dtype not in ("uint8", "float32"):
            raise ValueError(f"pixel_dtype must be 'uint8' or 'float32', got "
                             f"{str(self.pixel_dtype)[:60]!r}")


def _with_top_k(options: ServingOptions, classes: int) -> ServingOptions:
    """`options` with `top_k` set: as given, else `DEFAULT_TOP_K` or `classes` if fewer."""
    if options.top_k is not None:
        return options
    return dataclasses.replace(options, top_k=min(DEFAULT_TOP_K, classes))


def _check(model: keras.Model, options: ServingOptions) -> None:
    crop = model.input_shape[1]
    if options.test_scale < crop:
        raise ValueError(f"test_scale Q={options.test_scale} is smaller than the model's "
                         f"training crop {crop}: the dense net needs at least the crop")
    classes = model.output_shape[-1]
    if not 1 <= options.top_k <= classes:
        raise ValueError(f"top_k must be in [1, {classes}], got {options.top_k}")


def dense_class_boxes(box_map: tf.Tensor, class_scores: tf.Tensor, class_ids: tf.Tensor,
                      factor: tf.Tensor, crop: int, mode: str) -> tf.Tensor:
    """One box per requested class, from dense maps of one batch (see the module's "Boxes").

    Args:
      box_map: `[b, h, w, 4]` (SCR) or `[b, h, w, 4 * classes]` (PCR) centre boxes relative
        to each position's `crop` window.
      class_scores: `[b, h, w, classes]` softmax scores per position.
      class_ids: `[b, k]` int32 classes.
      factor: `[2]` (y, x) rescaled-over-original scale.

    Returns:
      `[b, k, 4]` corners in original pixels.
    """
    corners = boxes.dense_corners(box_map, class_ids, factor, crop, configs.MIN_INPUT_SIZE,
                                  mode)
    batch = tf.shape(box_map)[0]
    scores = tf.transpose(tf.gather(tf.reshape(class_scores, [batch, tf.shape(corners)[2], -1]),
                                    class_ids, axis=2, batch_dims=1), [0, 2, 1])
    seed = tf.gather(corners, tf.argmax(scores, axis=-1, output_type=tf.int32), axis=2,
                     batch_dims=2)[:, :, None]  # [b, k, 1, 4]
    members = tf.cast(boxes.overlap(corners, seed) > boxes.IOU_THRESHOLD, tf.float32)[..., None]
    return tf.math.divide_no_nan(tf.reduce_sum(corners * members, axis=2),
                                 tf.reduce_sum(members, axis=2))


class ServingModule:
    """The exported computation, in the shape of Model Garden's `ExportModule`: each
    signature a method over one `inference.DenseClassifier` (and, with a localisation net,
    a second one for its box map).

    Args:
      model: a `keras_vgg` model with its head.
      options: what the graph does besides the network (`ServingOptions`).
      class_names: the names `top_k_names` gives, in label order (default: ImageNet's for
        1000 classes, else the indices).
      localiser: a localisation net of the same crop (`keras_vgg.localisation`): both
        signatures then also return `boxes`.

    Raises:
      ValueError: Q below the crop, `top_k` beyond the classes, a localiser of another crop.
    """

    def __init__(self, model: keras.Model, *, options: ServingOptions,
                 class_names: Sequence[str] | None = None,
                 localiser: keras.Model | None = None):
        self.options = options = _with_top_k(options, model.output_shape[-1])
        _check(model, options)
        self.classes = model.output_shape[-1]
        self.crop = model.input_shape[1]
        self.classifier = inference.DenseClassifier(
            model, test_scales=(options.test_scale,), preprocessing=options.preprocessing,
            flip=options.flip)
        self.localiser = self.box_mode = None
        if localiser is not None:
            if localiser.input_shape[1] != self.crop:
                raise ValueError(f"the localisation net's crop {localiser.input_shape[1]} is "
                                 f"not the classifier's {self.crop}")
            self.localiser = inference.DenseClassifier(
                localiser, test_scales=(options.test_scale,),
                preprocessing=options.preprocessing, flip=False, head=localisation.BOX_LAYER)
            self.box_mode = localisation.mode_of(localiser)[0]
        self.names = tf.constant(nets.class_labels(self.classes, class_names)[1])

    def networks(self) -> list[keras.Model]:
        """The fully-convolutional nets whose variables the export holds."""
        return [dense_classifier.net for dense_classifier in (self.classifier, self.localiser)
                if dense_classifier is not None]

    def signatures(self) -> dict:
        """`{signature name: (method, [TensorSpec])}`."""
        return {
            SIGNATURE_PIXELS: (self.serve_pixels, [tf.TensorSpec(
                [None, None, None, 3], self.options.pixel_dtype, name=INPUT_PIXELS)]),
            SIGNATURE_BYTES: (self.serve_bytes, [tf.TensorSpec([None], tf.string,
                                                               name=INPUT_BYTES)]),
        }

    def _checked(self, images: tf.Tensor) -> tf.Tensor:
        """`images` `[batch, h, w, 3]`, once the bounds are checked."""
        height, width = tf.shape(images)[1], tf.shape(images)[2]
        checks = [
            tf.debugging.assert_positive(
                tf.minimum(height, width), message="images must be at least 1x1 pixels"),
            tf.debugging.assert_less_equal(
                tf.maximum(height, width), image_ops.MAX_ASPECT_RATIO * tf.minimum(height, width),
                message=f"image aspect ratio is above {image_ops.MAX_ASPECT_RATIO}:1"),
            tf.debugging.assert_less_equal(
                tf.cast(height, tf.int64) * tf.cast(width, tf.int64),
                tf.constant(self.options.max_pixels, tf.int64),
                message=f"images must have at most {self.options.max_pixels} pixels"),
        ]
        if images.dtype.is_floating:
            checks.append(tf.debugging.assert_all_finite(
                images, "images hold NaN or infinite pixel values"))
        with tf.control_dependencies(checks):
            return tf.identity(images)

    def _dense(self, images: tf.Tensor):
        """Dense evaluation of a batch of one size: (`[b, H, W, classes]` score map, `[b,
        classes]` probabilities, `[b, k, 4]` boxes or None)."""
        x, factor = self.classifier.inputs(self._checked(images), self.options.test_scale)
        outputs = self.classifier.apply(x, factor)
        score_map, probabilities = outputs[inference.SCORE_MAP], outputs[
            inference.PROBABILITIES]
        if self.localiser is None:
            return score_map, probabilities, None
        top_ids = tf.math.top_k(probabilities, k=self.options.top_k).indices
        box_map = self.localiser.apply(x, factor)[inference.SCORE_MAP]
        return score_map, probabilities, dense_class_boxes(
            box_map, tf.nn.softmax(score_map), top_ids, factor, self.crop, self.box_mode)

    def _named(self, probabilities, boxes=None) -> dict:
        top = tf.math.top_k(probabilities, k=self.options.top_k)
        outputs = {
            "probabilities": probabilities,
            "top_k_ids": top.indices,
            "top_k_names": tf.gather(self.names, top.indices),
            "top_k_probabilities": top.values,
        }
        if boxes is not None:
            outputs[BOXES] = boxes
        return outputs

    def serve_pixels(self, images: tf.Tensor) -> dict:
        """`serving_default`: `[batch, h, w, 3]` pixels of one size -> the outputs."""
        # TF-Serving does not check shapes against the signature; a 4-channel image would
        # otherwise run (the preprocessing slices channels).
        images = _non_empty(tf.ensure_shape(images, [None, None, None, 3]))
        score_map, probabilities, boxes = self._dense(images)
        outputs = self._named(probabilities, boxes)
        if self.options.score_map:
            outputs["score_map"] = score_map
        return outputs

    def serve_bytes(self, image_bytes: tf.Tensor) -> dict:
        """`image_bytes`: `[batch]` encoded images, each its own size -> the outputs."""
        def one(contents_and_index):
            contents, index = contents_and_index
            is_image = image_ops.is_image_format(contents)
            # The file's first bytes, made valid UTF-8 for the error message.
            start = tf.strings.unicode_transcode(
                tf.strings.substr(contents, 0, 8), "UTF-8", "UTF-8", errors="replace")
            message = tf.strings.format(
                f"image_bytes[{{}}] is not a {image_ops.IMAGE_FORMATS} file (it is empty or "
                "another format); it starts with {}", (index, start))
            with tf.control_dependencies([tf.debugging.Assert(is_image, [message])]):
                problem = image_ops.image_problem(contents, self.options.max_pixels)
            beyond = tf.strings.join(
                ["image_bytes[", tf.strings.as_string(index), "] ", problem])
            with tf.control_dependencies([tf.debugging.Assert(tf.equal(problem, ""), [beyond])]):
                image = image_ops.decode_image(contents)
            _, probabilities, boxes = self._dense(image[None])
            if boxes is None:
                return probabilities[0]
            return probabilities[0], boxes[0]

        image_bytes = _non_empty(tf.ensure_shape(image_bytes, [None]))
        signature = tf.TensorSpec([self.classes], tf.float32)
        if self.localiser is not None:
            signature = (signature, tf.TensorSpec([self.options.top_k, 4], tf.float32))
        results = tf.map_fn(one, (image_bytes, tf.range(tf.size(image_bytes))),
                            fn_output_signature=signature)
        return self._named(*results) if self.localiser is not None else self._named(results)


def _non_empty(batch: tf.Tensor) -> tf.Tensor:
    with tf.control_dependencies([tf.debugging.assert_positive(
            tf.shape(batch)[0], message="the request holds no images: send at least one")]):
        return tf.identity(batch)


def read_options(path: str) -> ServingOptions:
    """The `ServingOptions` a version directory was exported with."""
    options_path = os.path.join(path, OPTIONS_FILE)
    if not tf.io.gfile.exists(options_path):
        raise ValueError(f"{path} is not a keras_vgg export: it has no {OPTIONS_FILE}")
    document = _read_json(options_path)
    fields = {field.name for field in dataclasses.fields(ServingOptions)}
    if not isinstance(document, dict) or not set(document) <= fields:
        raise ValueError(f"{options_path} is damaged: expected an object of {sorted(fields)}")
    try:
        return ServingOptions(**document)
    except ValueError as error:
        raise ValueError(f"{options_path} is damaged: {error}") from error


def _read_json(path: str):
    """The JSON document in `path` (local or a TensorFlow file system's URL); ValueError
    naming the file when it cannot be read or parsed."""
    try:
        with tf.io.gfile.GFile(path, "rb") as file:
            return json.loads(file.read(files.MAX_JSON_BYTES + 1)[:files.MAX_JSON_BYTES])
    except (tf.errors.OpError, UnicodeDecodeError, ValueError, RecursionError) as error:
        raise ValueError(f"{path} cannot be read as JSON: {error}") from error


def next_version(model_dir: str) -> int:
    """1 + the highest integer version directory under `model_dir` (1 when there is none)."""
    if not tf.io.gfile.isdir(model_dir):
        return 1
    versions = [int(name.rstrip("/")) for name in tf.io.gfile.listdir(model_dir)
                if re.fullmatch(r"\d+/?", name)]
    return max(versions, default=0) + 1


def warmup_requests(model_name: str, options: ServingOptions) -> list[bytes]:
    """Serialized `PredictionLog`s TF-Serving replays when it loads the model: each
    signature at two image sizes (Q x Q and a 4:3 portrait, Q wide)."""
    try:
        from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2
    except ImportError as error:
        raise ImportError(
            "writing TF-Serving warmup requests needs tensorflow-serving-api; with "
            "tensorflow-cpu install it without its dependencies (they would add the full "
            "tensorflow wheel): pip install --no-deps tensorflow-serving-api==2.21.0"
        ) from error
    q = options.test_scale
    sizes = ((q, q), (q * 4 // 3, q))
    rng = np.random.default_rng(0)
    pixels = [rng.integers(0, 256, (1, h, w, 3), dtype=np.uint8) for h, w in sizes]
    requests = [(SIGNATURE_PIXELS, INPUT_PIXELS, image.astype(options.pixel_dtype))
                for image in pixels]
    encoded = [tf.io.encode_jpeg(image[0]).numpy() for image in pixels]
    requests.append((SIGNATURE_BYTES, INPUT_BYTES, tf.constant(encoded)))
    logs = []
    for signature, input_name, tensor in requests:
        request = predict_pb2.PredictRequest(
            model_spec=model_pb2.ModelSpec(name=model_name, signature_name=signature))
        request.inputs[input_name].CopyFrom(tf.make_tensor_proto(tensor))
        logs.append(prediction_log_pb2.PredictionLog(
            predict_log=prediction_log_pb2.PredictLog(request=request)).SerializeToString())
    return logs


@contextlib.contextmanager
def _quiet_tensorflow_logs():
    """TensorFlow's SavedModel writer logs every renamed input and asset at INFO level;
    those lines say nothing a user can act on."""
    logger = tf.get_logger()
    level, verbosity = logger.level, absl_logging.get_verbosity()
    logger.setLevel(logging.WARNING)
    absl_logging.set_verbosity(absl_logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)
        absl_logging.set_verbosity(verbosity)


def export_saved_model(
    model: keras.Model,
    export_base: str,
    *,
    model_name: str,
    version: int | None = None,
    options: ServingOptions = ServingOptions(),
    class_names: Sequence[str] | None = None,
    class_ids: Sequence[str] | None = None,
    warmup: bool = True,
    localiser: keras.Model | None = None,
) -> str:
    """Writes `model` (a `keras_vgg` model with its head) as a TF-Serving version directory
    `<export_base>/<model_name>/<version>` and returns its path; `<export_base>/models.config`
    then lists every model under `export_base` (`write_model_config`). With `localiser` (a
    localisation net, `keras_vgg.localisation`), the signatures also return `boxes`.

    `version` defaults to the next free integer. The version is written under a temporary
    name and renamed at the end, so a TF-Serving instance watching `export_base` never
    loads a half-written version. `class_names` default to ImageNet's for 1000 classes,
    else the indices; `class_ids` (the labelling's ids, for evaluation) to the names.
    """
    if not re.fullmatch(MODEL_NAME_PATTERN, model_name):
        raise ValueError(f"model_name {model_name!r} must be letters, digits, '_', '.', '-'")
    model_dir = os.path.join(export_base, model_name)
    files.check_writable(model_dir, what="the export directory")
    version = next_version(model_dir) if version is None else int(version)
    if version < 1:
        raise ValueError(f"version must be a positive integer, got {version}")
    final = os.path.join(model_dir, str(version))
    if tf.io.gfile.exists(final):
        raise FileExistsError(f"{final} exists: TF-Serving does not reload a version in place; "
                              "export a new version")
    classes = model.output_shape[-1]
    ids, names = nets.class_labels(classes, class_names)
    if class_ids is not None:
        ids = nets.class_labels(classes, class_ids)[0]
    options = _with_top_k(options, classes)
    module = ServingModule(model, options=options, class_names=names, localiser=localiser)
    archive = keras.export.ExportArchive()
    for network in module.networks():
        archive.track(network)
    for name, (function, signature) in module.signatures().items():
        archive.add_endpoint(name, function, input_signature=signature)
    staging = os.path.join(model_dir, f".staging-{version}-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        with _quiet_tensorflow_logs():
            archive.write_out(staging, verbose=False)
        tf.io.gfile.makedirs(os.path.join(staging, "assets.extra"))
        with tf.io.gfile.GFile(os.path.join(staging, OPTIONS_FILE), "w") as file:
            json.dump(dataclasses.asdict(options), file, indent=1)
        with tf.io.gfile.GFile(os.path.join(staging, CLASSES_FILE), "w") as file:
            json.dump([{"id": i, "name": n} for i, n in zip(ids, names, strict=True)], file,
                      indent=1)
        if warmup:
            with tf.io.TFRecordWriter(os.path.join(staging, WARMUP_FILE)) as writer:
                for record in warmup_requests(model_name, options):
                    writer.write(record)
        os.replace(staging, final)
    except (tf.errors.ResourceExhaustedError, tf.errors.UnavailableError, OSError) as error:
        reason = getattr(error, "message", None) or getattr(error, "strerror", None) or error
        raise files.WriteFailed(
            getattr(error, "errno", None) or errno.EIO,
            f"the export to {final} could not be written ({str(reason).splitlines()[0]}); "
            "nothing of it was kept: free space and export again") from error
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    write_model_config(export_base)
    return final


# TF-Serving's model names, as a file name: the served name is the model's folder.
MODEL_NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.-]*"
MODEL_CONFIG_FILE = "models.config"


def model_name_of(name: str) -> str:
    """`name` (a run's directory name, say) as a served model name: characters TF-Serving
    and file systems take, others replaced by `_`."""
    cleaned = re.sub(r"[^A-Za-z0-9_.-]", "_", name).lstrip("_.-")
    return cleaned or "model"


def write_model_config(export_base: str) -> str:
    """Writes `<export_base>/models.config`, TF-Serving's model config serving the newest
    version of every model folder under `export_base` (mounted at `/models`, as
    `export/docker-compose.yml` does); returns its path."""
    served = sorted(name for name in tf.io.gfile.listdir(export_base)
                    if re.fullmatch(MODEL_NAME_PATTERN, name.rstrip("/"))
                    and next_version(os.path.join(export_base, name)) > 1)
    blocks = "".join(
        f"  config {{\n    name: \"{name.rstrip('/')}\"\n    base_path: \"/models/"
        f"{name.rstrip('/')}\"\n    model_platform: \"tensorflow\"\n    model_version_policy "
        "{ latest { num_versions: 1 } }\n  }\n" for name in served)
    path = os.path.join(export_base, MODEL_CONFIG_FILE)
    files.write_text(path, "# TF-Serving's model config, written by keras_vgg's export: every "
                     "model under this folder, mounted at /models.\n"
                     f"model_config_list {{\n{blocks}}}\n")
    return path


def export_net(
    net: nets.Net,
    export_base: str,
    *,
    model_name: str | None = None,
    version: int | None = None,
    warmup: bool = True,
    localisation_run: runs.Run | None = None,
    **options,
) -> str:
    """Exports a net (`keras_vgg.nets`: a run, or a config with weights) with what it
    says: its classes' names as `top_k_names`, its preprocessing and its single-scale Q.
    `options` (`ServingOptions` fields) override; `model_name` defaults to the net's name
    (a run's directory name, or the config's model name such as `vgg16`). With
    `localisation_run` (a localisation run on the same classes), `boxes` too. Returns the
    version directory."""
    if net.saved_model is not None:
        raise ValueError(f"{net.saved_model} is an export already")
    if net.run is not None and net.run.config.task != "classification":
        raise ValueError(f"{net.run.directory} is a {net.run.config.task} run: export its "
                         "classification run, with this one as `localisation_run`")
    options = ServingOptions(**{"test_scale": net.test_scale,
                                "preprocessing": net.preprocessing, **options})
    localiser = None
    if localisation_run is not None:
        if localisation_run.config.task != "localisation":
            raise ValueError(f"{localisation_run.directory} is not a localisation run")
        runs.check_same_classes(net.class_ids, localisation_run.class_ids,
                                what=f"the localisation run {localisation_run.directory}")
        localiser = localisation_run.build_model()
    return export_saved_model(
        net.build(), export_base, model_name=model_name or model_name_of(net.name),
        version=version, options=options, class_names=net.class_names,
        class_ids=net.class_ids, warmup=warmup, localiser=localiser)


def read_classes(path: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The class ids and names (label order) a version directory was exported with.

    Raises:
      ValueError: not a keras_vgg export (or one written before exports recorded them).
    """
    classes_path = os.path.join(path, CLASSES_FILE)
    if not tf.io.gfile.exists(classes_path):
        raise ValueError(f"{path} has no {CLASSES_FILE}: export the net again with this "
                         "version of keras_vgg")
    classes = _read_json(classes_path)
    if not isinstance(classes, list) or not all(
            isinstance(entry, dict) and isinstance(entry.get("id"), str)
            and isinstance(entry.get("name"), str) for entry in classes):
        raise ValueError(f'{classes_path} is damaged: expected a list of {{"id": "...", '
                         '"name": "..."}')
    return tuple(c["id"] for c in classes), tuple(c["name"] for c in classes)

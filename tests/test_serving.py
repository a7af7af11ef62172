"""The TF-Serving export: layout, signatures of any image size, loading without this
package, warmup records, the client's REST/gRPC requests, and clear errors on bad input."""

import base64
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest
import tensorflow as tf
from conftest import NARROW, run_python

import keras_vgg
from keras_vgg import image_ops, inference, serving

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "export"))
import client  # noqa: E402
import serving_emulator  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CROP, Q, CLASSES = 64, 80, 7
NAMES = [f"shape-{i}" for i in range(CLASSES)]


def narrow_model(config="A-LRN", seed=0):
    import keras

    keras.utils.set_random_seed(seed)
    return keras_vgg.vgg(config, weights=None, width_multiplier=NARROW, classes=CLASSES,
                         input_shape=(CROP, CROP, 3))


def pixels(height, width, count=1, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (count, height, width, 3), np.uint8)


def png(image):
    return tf.io.encode_png(image).numpy()


def lying_png(height, width):
    """A small PNG whose header claims `height` x `width` pixels."""
    contents = bytearray(png(pixels(16, 16)[0]))
    contents[16:24] = width.to_bytes(4, "big") + height.to_bytes(4, "big")
    return bytes(contents)


def reference(model, images, *, q=Q, preprocessing="caffe", flip=False):
    """The package's one dense path (`inference.DenseClassifier`, tested against the plain
    model in test_inference.py): `[b, classes]` probabilities."""
    return inference.DenseClassifier(model, test_scales=(q,), preprocessing=preprocessing,
                                     flip=flip)(tf.constant(images)).numpy()


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """(model, version directory) of a narrow A-LRN exported with its score map."""
    model = narrow_model()
    base = str(tmp_path_factory.mktemp("exported"))
    path = serving.export_saved_model(
        model, base, model_name="shapes", class_names=NAMES,
        options=serving.ServingOptions(test_scale=Q, score_map=True))
    return model, path


@pytest.fixture(scope="module")
def loaded(exported):
    return tf.saved_model.load(exported[1]).signatures


@pytest.mark.slow
def test_tf_serving_layout_and_versions(exported, tmp_path):
    model, path = exported
    assert os.path.basename(path) == "1"
    for name in ("saved_model.pb", "variables", serving.WARMUP_FILE):
        assert os.path.exists(os.path.join(path, name)), name
    base = str(tmp_path)
    first = serving.export_saved_model(model, base, model_name="m", warmup=False,
                                       class_names=NAMES,
                                       options=serving.ServingOptions(test_scale=Q))
    second = serving.export_saved_model(model, base, model_name="m", warmup=False,
                                        class_names=NAMES,
                                        options=serving.ServingOptions(test_scale=Q))
    assert [os.path.basename(first), os.path.basename(second)] == ["1", "2"]
    with pytest.raises(FileExistsError, match="does not reload a version in place"):
        serving.export_saved_model(model, base, model_name="m", version=2, class_names=NAMES,
                                   options=serving.ServingOptions(test_scale=Q))
    assert sorted(os.listdir(os.path.join(base, "m"))) == ["1", "2"]  # no staging left


@pytest.mark.parametrize("options, message", [
    ({"test_scale": CROP - 1}, "smaller than the model's training crop"),
    ({"test_scale": Q, "preprocessing": "bgr"}, "unknown preprocessing"),
    ({"test_scale": Q, "top_k": CLASSES + 1}, "top_k must be in"),
    ({"test_scale": Q, "pixel_dtype": "int32"}, "pixel_dtype"),
    ({"test_scale": Q, "flip": "yes"}, "flip must be true or false"),
])
def test_bad_export_options_are_refused(options, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        serving.export_saved_model(narrow_model(), str(tmp_path), model_name="m",
                                   class_names=NAMES, options=serving.ServingOptions(**options))
    with pytest.raises(ValueError, match="3 class names for a net with 7 classes"):
        serving.export_saved_model(narrow_model(), str(tmp_path), model_name="m",
                                   class_names=["a", "b", "c"])


# The images of `fresh_process`: 50x40 is smaller than the crop, upscaled to Q.
FRESH_SIZES = ((Q, Q), (100, 150), (50, 40))


@pytest.fixture(scope="module")
def fresh_process(exported):
    """The export as a fresh Python sees it, with keras_vgg unimportable: its two
    signatures' answers on images of `FRESH_SIZES` (a batch of two of each size; then one of
    each, encoded, in one request), and `saved_model_cli show --all` (the TensorFlow
    command's own entry point, last: it exits)."""
    path = exported[1]
    script = f"""
import json, sys
sys.modules["keras_vgg"] = None  # importing it would fail
import numpy as np, tensorflow as tf
signatures = tf.saved_model.load({path!r}).signatures
rng = np.random.default_rng(0)
answers = {{"pixels": [], "bytes": []}}
images = [rng.integers(0, 256, (2, h, w, 3), np.uint8) for h, w in {FRESH_SIZES!r}]
for batch in images:
    out = signatures["serving_default"](images=tf.constant(batch))
    answers["pixels"].append({{k: v.numpy().tolist() if v.dtype != tf.string else
                               v.numpy().astype(str).tolist() for k, v in out.items()}})
files = [tf.io.encode_png(batch[0]).numpy() for batch in images]  # three sizes, one request
out = signatures["image_bytes"](image_bytes=tf.constant(files))
answers["bytes"] = out["probabilities"].numpy().tolist()
print(json.dumps(answers), flush=True)
from tensorflow.python.tools import saved_model_cli
sys.argv = ["saved_model_cli", "show", "--dir", {path!r}, "--all"]
saved_model_cli.main()
"""
    result = run_python(script)
    assert result.returncode == 0, result.stderr[-3000:]
    answers, cli = result.stdout.split("\n", 1)
    return json.loads(answers), cli


@pytest.mark.slow
def test_loads_in_a_fresh_process_without_the_package(exported, fresh_process):
    """Both signatures, images of three sizes, with keras_vgg unimportable; the answers
    equal the package's own dense evaluation."""
    model, _ = exported
    answers, _ = fresh_process
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (2, h, w, 3), np.uint8) for h, w in FRESH_SIZES]
    for (h, w), batch, answer in zip(FRESH_SIZES, images, answers["pixels"], strict=True):
        expected = reference(model, batch)
        np.testing.assert_allclose(answer["probabilities"], expected, atol=1e-5)
        top = np.argsort(-expected, axis=1)[:, :5]
        np.testing.assert_array_equal(answer["top_k_ids"], top)
        assert answer["top_k_names"] == [[NAMES[i] for i in row] for row in top]
        np.testing.assert_allclose(answer["top_k_probabilities"],
                                   np.take_along_axis(expected, top, 1), atol=1e-5)
        scale = Q / min(h, w)
        side = [round(h * scale) // 32 - CROP // 32 + 1, round(w * scale) // 32 - CROP // 32 + 1]
        assert np.shape(answer["score_map"]) == (2, *side, CLASSES)
    np.testing.assert_allclose(answers["bytes"], [a["probabilities"][0] for a in answers["pixels"]],
                               atol=1e-5)


@pytest.mark.slow
def test_saved_model_cli_shows_unknown_height_and_width(fresh_process):
    _, text = fresh_process
    default = text[text.index("signature_def['serving_default']"):]
    pixels_info = "dtype: DT_UINT8\n        shape: (-1, -1, -1, 3)"
    assert f"inputs['images'] tensor_info:\n        {pixels_info}" in default
    encoded = text[text.index("signature_def['image_bytes']"):]
    assert "inputs['image_bytes'] tensor_info:\n        dtype: DT_STRING\n        shape: (-1)" \
        in encoded
    for output in serving.OUTPUTS:
        assert f"outputs['{output}']" in default
    assert "shape: (-1, -1, -1, 7)" in default  # the score map


def test_warmup_records_parse_and_run(exported, loaded):
    from tensorflow_serving.apis import prediction_log_pb2

    records = list(tf.data.TFRecordDataset(os.path.join(exported[1], serving.WARMUP_FILE)))
    assert len(records) == 3
    seen = set()
    for record in records:
        log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
        request = log.predict_log.request
        assert request.model_spec.name == "shapes"
        signature = loaded[request.model_spec.signature_name]
        inputs = {k: tf.constant(tf.make_ndarray(v)) for k, v in request.inputs.items()}
        outputs = signature(**inputs)
        assert outputs["probabilities"].shape[-1] == CLASSES
        seen.add((request.model_spec.signature_name, tuple(next(iter(inputs.values())).shape)))
    assert seen == {("serving_default", (1, Q, Q, 3)), ("serving_default", (1, Q * 4 // 3, Q, 3)),
                    ("image_bytes", (2,))}


@pytest.mark.parametrize("images, message", [
    (pixels(20, 20)[..., :2], r"not compatible with expected shape \[\?,\?,\?,3\]"),
    (np.zeros((1, 20, 20, 4), np.uint8), r"not compatible with expected shape \[\?,\?,\?,3\]"),
    (np.zeros((20, 20, 3), np.uint8), r"not compatible with expected shape \[\?,\?,\?,3\]"),
    (np.zeros((1, 0, 20, 3), np.uint8), "images must be at least 1x1 pixels"),
    (np.zeros((1, 5, 200, 3), np.uint8), "aspect ratio is above 8:1"),
    (np.zeros((0, 20, 20, 3), np.uint8), "the request holds no images: send at least one"),
])
def test_bad_pixel_requests_get_clear_errors(loaded, images, message):
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        loaded["serving_default"](images=tf.constant(images))


@pytest.mark.parametrize("files, message", [
    ([b""], r"image_bytes\[0\] is not a JPEG, PNG, GIF, BMP or WebP file \(it is empty"),
    ([png(pixels(30, 30)[0]), b"plain text, not an image"],
     r"image_bytes\[1\] is not a JPEG, PNG, GIF, BMP or WebP file .* starts with .?\"plain te"),
    ([b"\xff\xd8\xff\xe0 truncated jpeg"], "jpeg|JPEG"),
    ([b"\x80\x81\xfe\xff\x00 not UTF-8"],
     r"image_bytes\[0\] is not a JPEG, PNG, GIF, BMP or WebP file .* starts with"),
    ([png(pixels(5, 200)[0])], r"image_bytes\[0\] is 200x5 pixels, beyond the 8:1 aspect"),
    ([png(pixels(30, 30)[0]), lying_png(20000, 20000)],
     rf"image_bytes\[1\] is 20000x20000 pixels, above the bound of {image_ops.MAX_PIXELS}"),
    ([], "the request holds no images: send at least one"),
])
def test_bad_encoded_requests_get_clear_errors(loaded, files, message):
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        loaded["image_bytes"](image_bytes=tf.constant(files, tf.string))


@pytest.mark.slow
def test_the_pixel_bound_is_an_export_option_checked_before_decoding():
    options = serving.ServingOptions(test_scale=Q, max_pixels=64 * 64, pixel_dtype="float32")
    functions = serving.ServingModule(narrow_model("A"), options=options).signatures()
    (from_bytes, (bytes_spec,)), (from_pixels, (pixel_spec,)) = (
        functions[serving.SIGNATURE_BYTES], functions[serving.SIGNATURE_PIXELS])
    from_bytes = tf.function(from_bytes, input_signature=[bytes_spec])
    from_pixels = tf.function(from_pixels, input_signature=[pixel_spec])
    assert from_bytes(tf.constant([png(pixels(64, 64)[0])]))["probabilities"].shape == (1, 7)
    with pytest.raises(tf.errors.InvalidArgumentError, match="is 65x64 pixels, above the bound"):
        from_bytes(tf.constant([png(pixels(64, 65)[0])]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="at most 4096 pixels"):
        from_pixels(tf.constant(pixels(64, 65).astype("float32")))
    nan = np.full((1, 64, 64, 3), np.nan, np.float32)
    with pytest.raises(tf.errors.InvalidArgumentError, match="NaN or infinite pixel values"):
        from_pixels(tf.constant(nan))


def test_one_tensorflow_wheel_only():
    """tensorflow-serving-api is installed without its `tensorflow` dependency: the full
    wheel and tensorflow-cpu would overwrite each other's files."""
    from importlib import metadata

    installed = []
    for wheel in ("tensorflow", "tensorflow-cpu", "tensorflow-intel", "tf-nightly"):
        try:
            installed.append((wheel, metadata.version(wheel)))
        except metadata.PackageNotFoundError:
            pass
    assert len(installed) == 1, installed
    assert metadata.version("tensorflow-serving-api").split(".")[:2] == \
        tf.__version__.split(".")[:2]


def test_client_and_export_agree_on_names():
    assert (client.SIGNATURE_PIXELS, client.SIGNATURE_BYTES, client.INPUT_PIXELS,
            client.INPUT_BYTES) == (serving.SIGNATURE_PIXELS, serving.SIGNATURE_BYTES,
                                    serving.INPUT_PIXELS, serving.INPUT_BYTES)


@pytest.mark.parametrize("layout", client.LAYOUTS)
def test_rest_bodies_follow_tf_serving_json_format(loaded, layout):
    files = [png(pixels(70, 90, seed=1)[0]), png(pixels(120, 64, seed=2)[0])]
    body = client.rest_body(files, layout=layout)
    assert body["signature_name"] == "image_bytes"
    values = ([row["image_bytes"] for row in body["instances"]] if layout == "instances"
              else body["inputs"]["image_bytes"])
    assert [base64.b64decode(v["b64"]) for v in values] == files  # {"b64": ...} objects
    json.dumps(body)  # serialisable as is
    answer = serving_emulator.rest_answer(body, loaded)
    direct = loaded["image_bytes"](image_bytes=tf.constant(files))["probabilities"].numpy()
    answers = client.parse_rest_response(answer)
    np.testing.assert_allclose([a["probabilities"] for a in answers], direct, atol=1e-6)

    batch = pixels(70, 90, count=2)
    body = client.rest_body(batch, layout=layout)
    assert body["signature_name"] == "serving_default"
    values = ([row["images"] for row in body["instances"]] if layout == "instances"
              else body["inputs"]["images"])
    np.testing.assert_array_equal(np.array(values), batch)
    answers = client.parse_rest_response(serving_emulator.rest_answer(body, loaded))
    np.testing.assert_allclose([a["probabilities"] for a in answers],
                               loaded["serving_default"](images=batch)["probabilities"], atol=1e-6)
    assert list(answers[0]["top_k_names"]) == [NAMES[i] for i in answers[0]["top_k_ids"]]


@pytest.mark.parametrize("images, message", [
    ([], "at least one non-empty file"),
    ([b"ok", b""], "at least one non-empty file"),
    (np.zeros((2, 8, 8)), r"\[batch, height, width, 3\] array .* got shape \(2, 8, 8\)"),
    (np.zeros((1, 8, 8, 4)), r"got shape \(1, 8, 8, 4\)"),
])
def test_client_refuses_malformed_images_before_sending(images, message):
    with pytest.raises(ValueError, match=message):
        client.rest_body(images)


def test_rest_round_trip_and_server_errors(exported, loaded):
    server = serving_emulator.RestServer("shapes", loaded)
    try:
        files = [png(pixels(70, 90, seed=3)[0])]
        answers = client.predict_rest(server.address, "shapes", files, version=1)
        expected = reference(exported[0], pixels(70, 90, seed=3))
        np.testing.assert_allclose(answers[0]["probabilities"], expected[0], atol=1e-5)
        assert server.requests[-1]["signature_name"] == "image_bytes"
        with pytest.raises(client.ServingError,
                           match="(?s)HTTP 400 .*not a JPEG, PNG, GIF, BMP or WebP"):
            client.predict_rest(server.address, "shapes", [b"not an image"])
        with pytest.raises(client.ServingError, match="(?s)HTTP 404 .*Servable not found"):
            client.predict_rest(server.address, "other", files)
    finally:
        server.close()


def test_grpc_round_trip_and_errors(exported, loaded):
    server, address = serving_emulator.grpc_server("shapes", loaded)
    try:
        files = [png(pixels(70, 90, seed=4)[0]), png(pixels(64, 64, seed=5)[0])]
        answers = client.predict_grpc(address, "shapes", files)
        expected = [reference(exported[0], pixels(70, 90, seed=4))[0],
                    reference(exported[0], pixels(64, 64, seed=5))[0]]
        np.testing.assert_allclose([a["probabilities"] for a in answers], expected, atol=1e-5)
        assert list(answers[0]["top_k_names"]) == [NAMES[i] for i in answers[0]["top_k_ids"]]
        answers = client.predict_grpc(address, "shapes", pixels(70, 90, seed=4))
        np.testing.assert_allclose(answers[0]["probabilities"], expected[0], atol=1e-5)
        with pytest.raises(client.ServingError, match="(?s)INVALID_ARGUMENT .*not a JPEG"):
            client.predict_grpc(address, "shapes", [b"GIF? no"])
    finally:
        server.stop(0)


@pytest.mark.parametrize("preprocessing, flip", [("torch", True), ("caffe", False)])
def test_preprocessing_flip_and_float_input_are_in_the_graph(preprocessing, flip):
    model = narrow_model("A")
    options = serving.ServingOptions(test_scale=Q, preprocessing=preprocessing, flip=flip,
                                     pixel_dtype="float32")
    functions = serving.ServingModule(model, options=options, class_names=NAMES).signatures()
    function, (spec,) = functions[serving.SIGNATURE_PIXELS]
    assert spec.dtype == tf.float32 and spec.shape.as_list() == [None, None, None, 3]
    batch = pixels(72, 96, count=2).astype("float32")
    out = tf.function(function, input_signature=[spec])(tf.constant(batch))
    assert "score_map" not in out
    np.testing.assert_allclose(out["probabilities"], reference(
        model, batch, preprocessing=preprocessing, flip=flip), atol=1e-5)


@pytest.mark.skipif(
    shutil.which("tensorflow_model_server") is None,
    reason="tensorflow_model_server is not on PATH: TF-Serving installs only from Docker or "
           "Google's apt repository, neither reachable on this machine")
def test_real_tensorflow_model_server(exported, tmp_path):
    import socket

    def free_port():
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]

    grpc_port, rest_port = free_port(), free_port()
    base = os.path.dirname(exported[1])
    server = subprocess.Popen(
        ["tensorflow_model_server", f"--port={grpc_port}", f"--rest_api_port={rest_port}",
         "--model_name=shapes", f"--model_base_path={base}"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{rest_port}/v1/models/shapes") as r:
                    if "AVAILABLE" in r.read().decode():
                        break
            except OSError:
                pass
            assert time.time() < deadline, "TF-Serving did not load the model in 120 s"
            time.sleep(1)
        files = [png(pixels(70, 90, seed=6)[0]), png(pixels(100, 64, seed=7)[0])]
        expected = [reference(exported[0], pixels(70, 90, seed=6))[0],
                    reference(exported[0], pixels(100, 64, seed=7))[0]]
        for answers in (client.predict_rest(f"127.0.0.1:{rest_port}", "shapes", files),
                        client.predict_grpc(f"127.0.0.1:{grpc_port}", "shapes", files)):
            np.testing.assert_allclose([a["probabilities"] for a in answers], expected,
                                       atol=1e-5)
        with pytest.raises(client.ServingError, match="not a JPEG"):
            client.predict_rest(f"127.0.0.1:{rest_port}", "shapes", [b"text"])
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_an_export_base_that_cannot_be_written_is_named(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match=r"the export directory '.*file/m' cannot be created"):
        serving.export_saved_model(narrow_model(), str(tmp_path / "file"), model_name="m",
                                   warmup=False, options=serving.ServingOptions(test_scale=Q))

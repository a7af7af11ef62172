"""A client for the exported VGG behind TF-Serving, over REST (JSON) or gRPC.

    python export/client.py --server=localhost:8501 --model=mine cat.jpg dog.png
    python export/client.py --protocol=grpc --server=localhost:8500 --model=mine cat.jpg

Sends image files as they are (the `image_bytes` signature: the server decodes, rescales and
preprocesses), or decoded pixel arrays (`serving_default`), and prints each image's best
classes. Stand-alone: REST needs only the standard library and numpy, so it runs where
keras_vgg is not installed. gRPC needs `tensorflow-serving-api`, which declares a dependency
on the full `tensorflow` wheel; next to `tensorflow-cpu` install it with `--no-deps`, since
the two TensorFlow wheels write the same files.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from collections.abc import Sequence

import numpy as np

# The exported signatures (keras_vgg/serving.py; a test keeps the two in step).
SIGNATURE_PIXELS = "serving_default"
SIGNATURE_BYTES = "image_bytes"
INPUT_PIXELS = "images"
INPUT_BYTES = "image_bytes"
LAYOUTS = ("instances", "inputs")


class ServingError(RuntimeError):
    """The server refused the request; the message is the server's."""


def _signature_input(images) -> tuple[str, str, list]:
    """`(signature, input name, per-image values)`: a list of encoded files, or a
    `[batch, height, width, 3]` array."""
    if isinstance(images, (list, tuple)) and all(isinstance(i, bytes) for i in images):
        if not images or not all(images):
            raise ValueError("image_bytes requests need at least one non-empty file")
        return SIGNATURE_BYTES, INPUT_BYTES, list(images)
    pixels = np.asarray(images)
    if pixels.ndim != 4 or pixels.shape[-1] != 3 or 0 in pixels.shape:
        raise ValueError(f"pixel images must be a non-empty [batch, height, width, 3] array "
                         f"(one size per request), got shape {pixels.shape}")
    return SIGNATURE_PIXELS, INPUT_PIXELS, list(pixels)


def rest_url(server: str, model: str, version: int | None = None) -> str:
    """TF-Serving's predict endpoint: `http://server/v1/models/<model>[/versions/<v>]:predict`."""
    versioned = f"/versions/{int(version)}" if version is not None else ""
    prefix = "" if server.startswith(("http://", "https://")) else "http://"
    return f"{prefix}{server}/v1/models/{model}{versioned}:predict"


def rest_body(images, *, layout: str = "instances") -> dict:
    """The JSON body of a REST predict request, in TF-Serving's row (`instances`) or
    columnar (`inputs`) format; binary strings travel as `{"b64": ...}`."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    signature, input_name, values = _signature_input(images)
    if input_name == INPUT_BYTES:
        values = [{"b64": base64.b64encode(value).decode("ascii")} for value in values]
    else:
        values = [value.tolist() for value in values]
    if layout == "instances":
        return {"signature_name": signature,
                "instances": [{input_name: value} for value in values]}
    return {"signature_name": signature, "inputs": {input_name: values}}


def parse_rest_response(body: dict) -> list[dict]:
    """TF-Serving's answer (`predictions` or `outputs`) -> one `{output: value}` per image."""
    if "error" in body:
        raise ServingError(body["error"])
    if "predictions" in body:
        rows = body["predictions"]
        return [{k: np.asarray(v) for k, v in row.items()} for row in rows]
    if "outputs" in body:
        columns = {k: np.asarray(v) for k, v in body["outputs"].items()}
        count = len(next(iter(columns.values())))
        return [{k: v[i] for k, v in columns.items()} for i in range(count)]
    raise ServingError(f"unexpected response keys {sorted(body)}")


def predict_rest(server: str, model: str, images, *, version: int | None = None,
                 layout: str = "instances", timeout: float = 60.0) -> list[dict]:
    """One REST predict call; returns one dict of outputs per image."""
    request = urllib.request.Request(
        rest_url(server, model, version), data=json.dumps(rest_body(images, layout=layout))
        .encode("utf8"), headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return parse_rest_response(json.load(response))
    except urllib.error.HTTPError as error:
        text = error.read().decode("utf8", "replace")
        try:
            message = json.loads(text).get("error", text)
        except json.JSONDecodeError:
            message = text
        raise ServingError(f"HTTP {error.code} from {error.url}: {message}") from error


def predict_request(model: str, images, *, version: int | None = None):
    """A gRPC `tensorflow.serving.PredictRequest` for the images."""
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    signature, input_name, values = _signature_input(images)
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = signature
    if version is not None:
        request.model_spec.version.value = int(version)
    tensor = np.array(values, dtype=object) if input_name == INPUT_BYTES else np.stack(values)
    request.inputs[input_name].CopyFrom(tf.make_tensor_proto(tensor))
    return request


def parse_grpc_response(response) -> list[dict]:
    """A `PredictResponse` -> one `{output: value}` per image (strings decoded)."""
    import tensorflow as tf

    columns = {}
    for name, proto in response.outputs.items():
        value = tf.make_ndarray(proto)
        columns[name] = value.astype(str) if value.dtype == object else value
    count = len(next(iter(columns.values())))
    return [{k: v[i] for k, v in columns.items()} for i in range(count)]


def predict_grpc(server: str, model: str, images, *, version: int | None = None,
                 timeout: float = 60.0) -> list[dict]:
    """One gRPC predict call to `server` ("host:port", TF-Serving's 8500)."""
    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    with grpc.insecure_channel(server, options=[
            ("grpc.max_send_message_length", 256 << 20),
            ("grpc.max_receive_message_length", 256 << 20)]) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        try:
            response = stub.Predict(predict_request(model, images, version=version),
                                    timeout=timeout)
        except grpc.RpcError as error:
            raise ServingError(f"{error.code().name} from {server}: {error.details()}") from error
    return parse_grpc_response(response)


def describe(answers: Sequence[dict], paths: Sequence[str]) -> str:
    """Each image's best classes, one line per image."""
    lines = []
    for path, answer in zip(paths, answers, strict=True):
        best = ", ".join(f"{name} {p:.1%}" for name, p in
                         zip(answer["top_k_names"], answer["top_k_probabilities"], strict=True))
        lines.append(f"{path}: {best}")
    return "\n".join(lines)


def main(argv):
    from absl import flags

    flags_ = flags.FLAGS
    paths = argv[1:]
    if not paths:
        raise SystemExit("client.py: error: give one or more image files")
    files = []
    for path in paths:
        with open(path, "rb") as file:
            files.append(file.read())
    try:
        if flags_.protocol == "rest":
            answers = predict_rest(flags_.server, flags_.model, files, version=flags_.version)
        else:
            answers = predict_grpc(flags_.server, flags_.model, files, version=flags_.version)
    except (ServingError, ValueError, urllib.error.URLError) as error:
        raise SystemExit(f"client.py: error: {error}") from error
    print(describe(answers, paths))


if __name__ == "__main__":
    from absl import app, flags

    flags.DEFINE_enum("protocol", "rest", ["rest", "grpc"], "REST (port 8501) or gRPC (8500).")
    flags.DEFINE_string("server", "localhost:8501", "host:port of TF-Serving.")
    flags.DEFINE_string("model", None, "Served model name: the one the export printed (its "
                        "folder under the export base).")
    flags.mark_flag_as_required("model")
    flags.DEFINE_integer("version", None, "Model version; default the latest.")
    app.run(main)

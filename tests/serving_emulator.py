"""A stand-in for TF-Serving's predict API over a loaded SavedModel, for client tests where
the `tensorflow_model_server` binary is absent: the REST JSON rules of TF-Serving's
documentation (row `instances` / columnar `inputs`, `{"b64": ...}` for binary strings,
`predictions` / `outputs` answers, `{"error": ...}` with HTTP 400), and a gRPC
`PredictionService` servicer.
"""

from __future__ import annotations

import base64
import json
import threading
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import tensorflow as tf


def _decode_json_value(value):
    if isinstance(value, dict):
        if set(value) != {"b64"}:
            raise ValueError(f"a JSON object value must be {{'b64': ...}}, got {sorted(value)}")
        return base64.b64decode(value["b64"])
    if isinstance(value, list):
        return [_decode_json_value(v) for v in value]
    return value


def _to_tensor(values, spec: tf.TensorSpec) -> tf.Tensor:
    if spec.dtype == tf.string:
        return tf.constant(np.array(values, dtype=object))
    return tf.constant(np.array(values), dtype=spec.dtype)


def rest_inputs(body: dict, signatures) -> tuple[str, dict]:
    """A REST predict body -> (signature name, {input name: tensor})."""
    signature_name = body.get("signature_name", "serving_default")
    if signature_name not in signatures:
        raise ValueError(f"Serving signature name: \"{signature_name}\" not found in signature def")
    specs = signatures[signature_name].structured_input_signature[1]
    if ("instances" in body) == ("inputs" in body):
        raise ValueError("JSON object must have exactly one of 'instances' or 'inputs'")
    if "instances" in body:
        rows = body["instances"]
        if all(isinstance(row, dict) and "b64" not in row for row in rows):
            columns = {name: [_decode_json_value(row[name]) for row in rows] for name in specs}
        elif len(specs) == 1:
            columns = {next(iter(specs)): [_decode_json_value(row) for row in rows]}
        else:
            raise ValueError("instances must be objects keyed by input name")
    else:
        inputs = body["inputs"]
        if isinstance(inputs, dict) and set(inputs) <= set(specs):
            columns = {name: _decode_json_value(value) for name, value in inputs.items()}
        elif len(specs) == 1:
            columns = {next(iter(specs)): _decode_json_value(inputs)}
        else:
            raise ValueError("inputs must be an object keyed by input name")
    missing = set(specs) - set(columns)
    if missing:
        raise ValueError(f"missing inputs {sorted(missing)}")
    return signature_name, {name: _to_tensor(columns[name], specs[name]) for name in specs}


def _jsonable(array: np.ndarray):
    if array.dtype == object:
        return np.vectorize(lambda b: b.decode("utf8"), otypes=[object])(array).tolist()
    return array.tolist()


def rest_answer(body: dict, signatures) -> dict:
    """TF-Serving's JSON answer to a predict body (row in, row out; columnar in, out)."""
    signature_name, inputs = rest_inputs(body, signatures)
    outputs = {k: v.numpy() for k, v in signatures[signature_name](**inputs).items()}
    if "instances" in body:
        count = len(next(iter(outputs.values())))
        return {"predictions": [{k: _jsonable(v[i]) for k, v in outputs.items()}
                                for i in range(count)]}
    return {"outputs": {k: _jsonable(v) for k, v in outputs.items()}}


class RestServer:
    """`http://127.0.0.1:<port>/v1/models/<name>[/versions/<v>]:predict` in a thread."""

    def __init__(self, model_name: str, signatures):
        self.requests: list[dict] = []
        served = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's name)
                expected = (f"/v1/models/{model_name}:predict",
                            f"/v1/models/{model_name}/versions/1:predict")
                try:
                    if self.path not in expected:
                        raise LookupError(f"Servable not found for request: {self.path}")
                    body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                    served.requests.append(body)
                    status, answer = 200, rest_answer(body, signatures)
                except LookupError as error:
                    status, answer = 404, {"error": str(error)}
                except (ValueError, tf.errors.InvalidArgumentError) as error:
                    status, answer = 400, {"error": str(error)}
                text = json.dumps(answer).encode("utf8")
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(text)))
                self.end_headers()
                self.wfile.write(text)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def grpc_server(model_name: str, signatures):
    """A started gRPC server with a `PredictionService` over `signatures`; returns
    `(server, "127.0.0.1:<port>")`."""
    import grpc
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    class Service(prediction_service_pb2_grpc.PredictionServiceServicer):
        def Predict(self, request, context):  # noqa: N802 (gRPC's name)
            if request.model_spec.name != model_name:
                context.abort(grpc.StatusCode.NOT_FOUND,
                              f"Servable not found for request: {request.model_spec.name}")
            name = request.model_spec.signature_name or "serving_default"
            if name not in signatures:
                context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                              f"Serving signature name: \"{name}\" not found")
            inputs = {k: tf.constant(tf.make_ndarray(v)) for k, v in request.inputs.items()}
            try:
                outputs = signatures[name](**inputs)
            except (TypeError, tf.errors.InvalidArgumentError) as error:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))
            response = predict_pb2.PredictResponse()
            for key, value in outputs.items():
                response.outputs[key].CopyFrom(tf.make_tensor_proto(value.numpy()))
            return response

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(Service(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, f"127.0.0.1:{port}"

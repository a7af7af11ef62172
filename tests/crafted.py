"""Hostile and damaged files, built on the spot by the tests of reliability: each function
writes one file (or tree) at the path it is given and says in one line what it attacks.
"""

from __future__ import annotations

import json
import os
import struct
import zipfile

import h5py
import numpy as np

# --- Weight files --------------------------------------------------------------------------

def nan_weights(model, path) -> str:
    """A run's weights with one NaN in its first kernel: a damaged checkpoint that loads
    silently into Keras and serves garbage."""
    model.save_weights(str(path))
    with h5py.File(path, "r+") as file:
        kernels = []
        file.visititems(lambda name, item: kernels.append(name) if isinstance(
            item, h5py.Dataset) and item.ndim >= 2 else None)
        data = file[kernels[0]][()]
        data.flat[0] = np.nan
        file[kernels[0]][...] = data
    return str(path)


def external_link_weights(model, path, target) -> str:
    """A run's weights whose first kernel is an HDF5 external link into `target` (another
    local file): reads a file the user never named."""
    model.save_weights(str(path))
    with h5py.File(path, "r+") as file:
        kernels = []
        file.visititems(lambda name, item: kernels.append(name) if isinstance(
            item, h5py.Dataset) and item.ndim >= 2 else None)
        del file[kernels[0]]
        file[kernels[0]] = h5py.ExternalLink(str(target), "/data")
    with h5py.File(target, "w") as other:
        other["data"] = np.zeros(3, np.float32)
    return str(path)


def keras_archive_with_flags(path, *, encrypted: bool = False, method: int | None = None) -> str:
    """A `.keras` zip whose weights entry claims encryption or a compression method zipfile
    lacks (99, AES): zipfile raises RuntimeError / NotImplementedError, not ValueError."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("model.weights.h5", b"\0" * 64)
    data = bytearray(open(path, "rb").read())
    for signature, flags_at, method_at in ((b"PK\x03\x04", 6, 8), (b"PK\x01\x02", 8, 10)):
        start = data.find(signature)
        if encrypted:
            data[start + flags_at] |= 1
        if method is not None:
            data[start + method_at:start + method_at + 2] = struct.pack("<H", method)
    open(path, "wb").write(bytes(data))
    return str(path)


def safetensors_file(path, tensors: dict[str, tuple[str, tuple[int, ...], bytes]],
                     *, sparse_tail: int = 0) -> str:
    """A `.safetensors` file of `{name: (dtype, shape, raw bytes)}`, written by hand so that
    dtypes numpy lacks (F8_E4M3, BF16) can be stored; `sparse_tail` adds an unused tensor of
    that many bytes as a hole in the file (a huge declared tensor that costs no disk)."""
    header, offset, chunks = {}, 0, []
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": list(shape),
                        "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
        chunks.append(raw)
    if sparse_tail:
        header["unused.huge"] = {"dtype": "F32", "shape": [sparse_tail // 4],
                                 "data_offsets": [offset, offset + sparse_tail]}
    text = json.dumps(header).encode()
    with open(path, "wb") as file:
        file.write(struct.pack("<Q", len(text)) + text + b"".join(chunks))
        if sparse_tail:
            file.truncate(8 + len(text) + offset + sparse_tail)
    return str(path)


# --- Data ---------------------------------------------------------------------------------

def _tfrecord_frame(data: bytes) -> bytes:
    """One TFRecord record with valid CRCs (written through TensorFlow)."""
    import tensorflow as tf

    path = os.path.join(os.environ.get("TMPDIR", "/tmp"), f".frame-{os.getpid()}.tfrecord")
    with tf.io.TFRecordWriter(path) as writer:
        writer.write(data)
    frame = open(path, "rb").read()
    os.remove(path)
    return frame


def example(image: bytes | None, label: int) -> bytes:
    """A serialized tf.train.Example of ImageNet's TFRecord layout; without its image when
    `image` is None (a record the pipeline cannot use)."""
    import tensorflow as tf

    feature = {"image/class/label": tf.train.Feature(int64_list=tf.train.Int64List(
        value=[label]))}
    if image is not None:
        feature["image/encoded"] = tf.train.Feature(bytes_list=tf.train.BytesList(
            value=[image]))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def tfrecord(path, records: list[bytes], *, damage: str | None = None) -> int:
    """A TFRecord file of `records`; `damage` "crc" flips a byte inside the last record's
    data (a CRC mismatch), "truncated" cuts the last record short. Returns the byte offset
    where the last record starts."""
    frames = [_tfrecord_frame(record) for record in records]
    last = sum(map(len, frames[:-1]))
    data = bytearray(b"".join(frames))
    if damage == "crc":
        data[last + 12 + len(records[-1]) // 2] ^= 0xFF
    elif damage == "truncated":
        data = data[:last + 12 + len(records[-1]) // 2]
    open(path, "wb").write(bytes(data))
    return last


def huge_sparse_file(path, size: int) -> str:
    """A file of `size` bytes that is one hole: a 'photo' of gigabytes that costs no disk,
    and memory only to whoever reads it whole."""
    with open(path, "wb") as file:
        file.truncate(size)
    return str(path)


# --- Run directories ----------------------------------------------------------------------

def tampered_run_json(run_json, change: str) -> None:
    """Rewrites a run's run.json as `change` says: "config_int", "config_list",
    "momentum_string", "no_run_config", "no_class_name", "deep" (nested 100,000 levels),
    "not_utf8", "huge_int" (a 5,000-digit integer beyond Python's conversion limit)."""
    text = open(run_json, encoding="utf8").read()
    document = json.loads(text)
    settings = document["run_config"]
    if change == "config_int":
        settings["config"] = 16
    elif change == "config_list":
        settings["config"] = ["D"]
    elif change == "momentum_string":
        settings["momentum"] = "0.9"
    elif change == "no_run_config":
        del document["run_config"]
    elif change == "no_class_name":
        del document["classes"][0]["name"]
    if change in ("deep", "not_utf8", "huge_int"):
        raw = {"deep": "[" * 100_000 + "]" * 100_000,
               "huge_int": text.replace('"seed": ', '"seed": ' + "9" * 5000 + ", \"x\": ", 1)
               }.get(change)
        data = raw.encode() if raw is not None else b"\xff\xfe" + text.encode("utf-16-le")
        open(run_json, "wb").write(data)
        return
    open(run_json, "w", encoding="utf8").write(json.dumps(document))

"""Weight files: the official Keras ImageNet files, Keras h5/.keras files, and
torchvision / timm checkpoints, all loaded by layer name and all-or-nothing.

Every reader gives `{layer_name: [arrays in the order of layer.weights]}`; `load_weights`
checks every layer of the model against it before assigning anything, so a bad file leaves
the model unchanged and the error names the file and the first mismatching layer.

Weight files come from anywhere, so nothing in one is trusted:
- HDF5 files are read lazily: every array's declared shape and dtype is checked against
  the model before a byte of it is read, so a file declaring huge arrays costs nothing.
- HDF5 links and storage that leave the file (external and soft links, external storage,
  virtual datasets) are refused: they would read other local files into the model.
- A `.keras` archive's weights are read from inside the zip, never whole into memory, and
  an entry that inflates more than `MAX_ZIP_EXPANSION` times is refused.
- Arrays must be floating point and finite (HDF5 has no checksum: a damaged file reads as
  NaN or garbage rather than failing).
- The official Keras files are downloaded into Keras' cache and checked against their
  published MD5; a mismatch names the file and its URL. The check is recorded beside the
  file (`VERIFIED_SUFFIX`), and repeated once the file's size or modification time differs.
- A checkpoint of non-float tensors (int8, boolean, float8, sparse, quantised) is refused,
  tensor by tensor, by name; bfloat16 loads from either format, as float32.
- Torch pickles are read with `weights_only=True`: a full pickle can run code.
- `.safetensors` files and torch's zip checkpoints are mapped into memory, not read: a
  tensor is read only when a layer takes it.
Loading a file thus costs about the model's own memory, whatever sizes the file declares.

torchvision and timm checkpoints are converted on load: conv kernels are transposed from
`[out, in, kh, kw]` to `[kh, kw, in, out]`, and fc1's input rows are reordered from NCHW to
NHWC flatten order. Every file loads into `channels_first` models unchanged: Keras' `Flatten`
orders a channels-first feature map as channels-last, so fc1's rows are the same.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import tempfile
import zipfile
from collections.abc import Collection, Iterator, Mapping

import h5py
import keras
import numpy as np

from keras_vgg import configs, files

# Arrays, or lazy h5py datasets (read with `np.asarray`) while their file is open.
WeightsByLayer = dict[str, list[np.ndarray]]

_KERAS_APPLICATIONS_URL = "https://storage.googleapis.com/tensorflow/keras-applications/"


@dataclasses.dataclass(frozen=True)
class PublishedWeights:
    """A file of the Keras Applications bucket and its published MD5."""

    fname: str
    origin: str
    md5: str


def _published(model_dir: str, fname: str, md5: str) -> PublishedWeights:
    return PublishedWeights(fname, f"{_KERAS_APPLICATIONS_URL}{model_dir}/{fname}", md5)


# (config letter, include_top) -> file; the hashes keras.applications publishes.
IMAGENET_WEIGHTS: dict[tuple[str, bool], PublishedWeights] = {
    ("D", True): _published(
        "vgg16", "vgg16_weights_tf_dim_ordering_tf_kernels.h5",
        "64373286793e3c8b2b4e3219cbf3544b",
    ),
    ("D", False): _published(
        "vgg16", "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
        "6d6bbae143d832006294945121d1f1fc",
    ),
    ("E", True): _published(
        "vgg19", "vgg19_weights_tf_dim_ordering_tf_kernels.h5",
        "cbe5617147190e668d6c5d5026f83318",
    ),
    ("E", False): _published(
        "vgg19", "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5",
        "253f8cb515780f3b799900260a226db6",
    ),
}

KERAS_SUFFIXES = (".h5", ".hdf5", ".keras")
TORCH_SUFFIXES = (".pth", ".pt", ".bin")
SAFETENSORS_SUFFIX = ".safetensors"
# The weights inside a `.keras` archive, and how much more than its stored bytes it may
# inflate to: Keras stores it uncompressed, and weights deflate by a few percent at most.
KERAS_ARCHIVE_WEIGHTS = "model.weights.h5"
MAX_ZIP_EXPANSION = 20


def check_imagenet_available(config: configs.VGGConfig, *, width_multiplier: float) -> None:
    """Raises a ValueError unless Keras publishes ImageNet weights for this network."""
    published = sorted({letter for letter, _ in IMAGENET_WEIGHTS})
    if config.name not in published:
        raise ValueError(
            f"weights='imagenet' exists for configs {published} (VGG16, VGG19: the official "
            f"Keras Applications files), not for {config.name!r}. For A and B (VGG11, VGG13) "
            "and the batch-norm variants, pass the path of a torchvision or timm checkpoint "
            "as `weights`."
        )
    if width_multiplier != 1.0:
        raise ValueError(
            "weights='imagenet' needs the paper's widths (width_multiplier=1.0). Received "
            f"width_multiplier={width_multiplier}"
        )


def keras_cache_dir() -> str:
    """Keras' cache folder, where `keras.utils.get_file` keeps downloads: `$KERAS_HOME`,
    else `~/.keras` (Keras reads the variable once at import; this reads it at each call)."""
    return os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")


def fetch_imagenet_weights(
    config: configs.VGGConfig, *, include_top: bool, cache_dir: str | None = None
) -> str:
    """Downloads (once) the official Keras ImageNet file and checks its MD5 (again only when
    the file's size or modification time has changed since); returns its path.

    Raises:
      ValueError: the file does not match its published MD5, or it is not in the cache and
        cannot be downloaded; the message names the file and the folder to put it in.
    """
    published = IMAGENET_WEIGHTS[(config.name, include_top)]
    cache_dir = cache_dir or keras_cache_dir()
    # Keras keeps downloads in /tmp/.keras when the cache folder cannot be written (or does
    # not exist yet): make it, so the file goes, and the error points, where users look.
    with contextlib.suppress(OSError):
        os.makedirs(cache_dir, exist_ok=True)
    if not os.access(cache_dir, os.W_OK):
        cache_dir = os.path.join("/tmp" if os.path.isdir("/tmp") else tempfile.gettempdir(),
                                 ".keras")
    cached = os.path.join(cache_dir, "models", published.fname)
    stamp = _stamp(cached, published.md5)
    if stamp is not None and stamp == _recorded_stamp(cached):
        return cached
    try:
        path = keras.utils.get_file(
            published.fname,
            published.origin,
            cache_subdir="models",
            file_hash=published.md5,
            hash_algorithm="md5",
            cache_dir=cache_dir,
        )
    except ValueError as error:
        raise ValueError(
            f"{published.fname} (from {published.origin}) does not match its published MD5 "
            f"{published.md5}: the download is truncated or corrupted ({error})"
        ) from error
    except Exception as error:  # get_file raises a bare Exception for network failures
        raise ValueError(
            f"weights='imagenet': {published.fname} is not in the Keras cache and cannot be "
            f"downloaded ({error}). Without a network, copy it (from {published.origin}, "
            f"MD5 {published.md5}) into {os.path.join(cache_dir, 'models')}"
        ) from error
    with contextlib.suppress(OSError):
        files.write_json(path + VERIFIED_SUFFIX, _stamp(path, published.md5))
    return path


# Beside a downloaded file whose MD5 matched: its size and modification time then. While
# they hold, the file is not hashed again (VGG16's 528 MB take a second or more to hash).
VERIFIED_SUFFIX = ".verified.json"


def _stamp(path: str, md5: str) -> dict | None:
    """`{md5, bytes, mtime_ns}` of the file at `path`; None where there is none."""
    try:
        status = os.stat(path)
    except OSError:
        return None
    return {"md5": md5, "bytes": status.st_size, "mtime_ns": status.st_mtime_ns}


def _recorded_stamp(path: str) -> dict | None:
    """The stamp recorded beside `path` when its MD5 was last checked; None where none is."""
    try:
        return files.read_json(path + VERIFIED_SUFFIX)
    except ValueError:
        return None


def load_weights(model: keras.Model, path: str | os.PathLike, *,
                 new_layers: Collection[str] = ()) -> list[str]:
    """Loads any supported weight file into `model`, by layer name, all or nothing.

    Formats, chosen by suffix: Keras 3 `.weights.h5`, legacy Keras `.h5` (the official
    keras.applications files and `model.save('x.h5')`), `.keras` archives, torchvision/timm
    `.pth` (needs torch; read with `weights_only=True`) and `.safetensors` (no torch needed).

    `new_layers` (e.g. `("predictions",)` to fine-tune onto other classes) may be missing
    from the file or have other shapes there; those keep their initialisation.

    Returns:
      The names of the `new_layers` left as they were.

    Raises:
      ValueError: the file cannot be read, or a layer is missing or has other shapes; the
        message names the file and the first mismatching layer, and the model is unchanged.
    """
    path = _existing_file(path, what="weights file")
    lower = path.lower()
    if lower.endswith(KERAS_SUFFIXES):
        with open_keras_file(path) as weights:
            return assign_weights(model, weights, source=path, new_layers=new_layers)
    if lower.endswith(TORCH_SUFFIXES + (SAFETENSORS_SUFFIX,)):
        weights = from_torch_state_dict(read_torch_file(path), model, source=path)
        return assign_weights(model, weights, source=path, new_layers=new_layers)
    raise ValueError(
        f"weights file {path!r}: unknown format; expected a Keras file "
        f"{KERAS_SUFFIXES} or a torchvision/timm checkpoint "
        f"{TORCH_SUFFIXES + (SAFETENSORS_SUFFIX,)}"
    )


def load_checkpoint(model: keras.Model, path: str | os.PathLike) -> None:
    """Restores a checkpoint `model.save_weights` wrote of this very model, optimizer state
    included (Keras' `model.load_weights`), after the checks every weight file gets: the file
    is self-contained, and each array is numeric and finite, read one at a time.

    Raises:
      ValueError: the file is damaged, reaches outside itself, or does not fit `model`; the
        message names the file, and the array.
    """
    path = _existing_file(path, what="checkpoint")
    try:
        with h5py.File(path, "r") as file:
            check_self_contained(file, path)
            arrays = []
            file.visititems(lambda name, item: arrays.append(name)
                            if isinstance(item, h5py.Dataset) else None)
            for name in arrays:
                _check_checkpoint_array(file[name], name, path)
    except OSError as error:
        raise ValueError(f"cannot read checkpoint {path!r}: truncated, corrupted or not a "
                         f"Keras weights file ({error})") from error
    try:
        model.load_weights(path)
    except (ValueError, KeyError, OSError) as error:
        raise ValueError(f"checkpoint {path} does not fit the model: {error}") from error


def _check_checkpoint_array(dataset: h5py.Dataset, name: str, path: str) -> None:
    if dataset.dtype.kind in "iu":  # the optimizer's step counters
        return
    check_floating(dataset.dtype, what=f"array {name!r}", source=path)
    check_finite(dataset[()], what=f"array {name!r}", source=path)


def _existing_file(path: str | os.PathLike, *, what: str) -> str:
    path = os.fspath(path)
    if os.path.isdir(path):
        raise ValueError(f"{what} {path!r} is a directory, not a file (a KerasHub preset "
                         "directory loads with keras_vgg.vgg(..., weights=DIR))")
    if not os.path.isfile(path):
        raise ValueError(f"{what} {path!r} does not exist")
    return path


def assign_weights(model: keras.Model, weights: Mapping[str, list], *, source: str,
                   new_layers: Collection[str] = ()) -> list[str]:
    """Sets every weighted layer of `model` from `weights`, after checking all of them.

    Entries for the head (fc1, fc2, predictions) are ignored when the model has no head, as
    loading a full file for feature extraction; any other unused entry is an error. Layers
    named in `new_layers` are left as they are when `weights` lacks them or has other
    shapes for them. Returns the names of the layers so left.
    """
    plan, fresh = [], []
    for layer in model.layers:
        if not layer.weights:
            continue
        if layer.name in new_layers and not _shapes_match(layer, weights.get(layer.name)):
            fresh.append(layer.name)
            continue
        if layer.name not in weights:
            raise ValueError(
                f"{source}: no weights for layer {layer.name!r} (the file has "
                f"{sorted(weights)}); is it a checkpoint of another VGG configuration?"
            )
        check_shapes(layer, weights[layer.name], source=source)
        plan.append((layer, weights[layer.name]))
    model_layers = {layer.name for layer in model.layers}
    unused = sorted(set(weights) - model_layers - _ignorable_head(model_layers))
    if unused:
        raise ValueError(
            f"{source}: the file has weights for layers the model does not have: {unused}; "
            "is it a checkpoint of another VGG configuration (e.g. with batch norm)?"
        )
    # Every declared shape and dtype is checked before any array is read.
    plan = [(layer, _read_checked(layer, arrays, source)) for layer, arrays in plan]
    for layer, arrays in plan:
        layer.set_weights(arrays)
    return fresh


def _shapes_match(layer: keras.layers.Layer, arrays: list | None) -> bool:
    return arrays is not None and [tuple(v.shape) for v in layer.weights] == [
        tuple(a.shape) for a in arrays]


def _read_checked(layer: keras.layers.Layer, arrays: list, source: str) -> list[np.ndarray]:
    """`arrays` (checked shapes) read into memory; ValueError unless floating and finite."""
    values = []
    for variable, array in zip(layer.weights, arrays, strict=True):
        what = f"layer {layer.name!r}, weight {variable.name!r}"
        check_floating(array.dtype, what=what, source=source)
        value = np.asarray(array)
        check_finite(value, what=what, source=source)
        values.append(value)
    return values


def check_finite(value: np.ndarray, *, what: str, source: str) -> None:
    """Raises a ValueError naming `source` and the array unless every value is finite: HDF5
    has no checksum, and a damaged file reads as NaN or garbage rather than failing."""
    finite = np.isfinite(value)
    if not finite.all():
        raise ValueError(f"{source}: {what} holds {finite.size - finite.sum()} NaN or "
                         "infinite values: the file is damaged")


def check_floating(dtype, *, what: str, source: str) -> None:
    """Raises a ValueError naming `source` and the tensor unless `dtype` is floating point:
    integer or boolean weights would load as kernels of zeros and ones."""
    if np.dtype(dtype).kind != "f":
        raise ValueError(
            f"{source}: {what} is stored as {np.dtype(dtype).name}, not as floating point; "
            "the file is not a checkpoint of trained weights (or is quantised)"
        )


def check_shapes(layer: keras.layers.Layer, arrays: list[np.ndarray], *, source: str) -> None:
    """Raises a ValueError naming `source` and the layer unless shapes match layer.weights."""
    expected = [tuple(variable.shape) for variable in layer.weights]
    found = [tuple(array.shape) for array in arrays]
    if expected != found:
        raise ValueError(
            f"{source}: layer {layer.name!r} expects weights of shapes {expected}, the "
            f"file has {found}; is it a checkpoint of another configuration, width or "
            "class count?"
        )


def _ignorable_head(model_layers: set[str]) -> set[str]:
    return set() if configs.PREDICTIONS_LAYER in model_layers else set(configs.HEAD_LAYERS)


def _decode(value) -> str:
    return value.decode("utf8") if isinstance(value, bytes) else str(value)


@contextlib.contextmanager
def open_keras_file(path: str) -> Iterator[WeightsByLayer]:
    """`{layer_name: [h5py datasets]}` of a Keras 3 `.weights.h5`, a legacy `.h5` or a
    `.keras` file, readable (`np.asarray`) until the context ends.

    Raises:
      ValueError: the file is not a Keras file, is damaged, or reaches outside itself
        (external or soft links, external storage, virtual datasets) or, for `.keras`,
        inflates more than `MAX_ZIP_EXPANSION` times.
    """
    try:
        with contextlib.ExitStack() as stack:
            if path.lower().endswith(".keras"):
                archive = stack.enter_context(zipfile.ZipFile(path))
                entry = archive.getinfo(KERAS_ARCHIVE_WEIGHTS)
                if entry.file_size > MAX_ZIP_EXPANSION * max(entry.compress_size, 1):
                    raise ValueError(
                        f"{path}: {KERAS_ARCHIVE_WEIGHTS} inflates from "
                        f"{entry.compress_size} to {entry.file_size} bytes; weights do not "
                        "compress like that (a zip bomb?)"
                    )
                file = stack.enter_context(h5py.File(stack.enter_context(archive.open(entry))))
            else:
                file = stack.enter_context(h5py.File(path, "r"))
            check_self_contained(file, path)
            yield _read_keras_h5(file, path)
    except (OSError, KeyError, zipfile.BadZipFile, RuntimeError, NotImplementedError) as error:
        # zipfile raises RuntimeError for an encrypted entry, NotImplementedError for a
        # compression method it lacks: Keras writes neither.
        raise ValueError(
            f"cannot read weights file {path!r}: truncated, corrupted or not a Keras file "
            f"({type(error).__name__}: {error})"
        ) from error


def check_self_contained(file: h5py.File, path: str) -> None:
    """Raises a ValueError unless every object of `file` lives in it: hard links only, and
    datasets without external or virtual storage."""

    links = []
    file.visititems_links(lambda name, link: links.append((name, link)))  # h5py: no raising
    for name, link in links:
        if not isinstance(link, h5py.HardLink):
            raise ValueError(
                f"{path}: {name!r} is an HDF5 {type(link).__name__}; Keras weight files "
                "hold their arrays themselves, and a link could read another file"
            )
        item = file[name]
        if isinstance(item, h5py.Dataset) and (item.external or item.is_virtual):
            raise ValueError(
                f"{path}: dataset {name!r} is stored outside the file "
                f"({'virtual' if item.is_virtual else item.external}); Keras weight files "
                "hold their arrays themselves"
            )


def _read_keras_h5(file: h5py.File, path: str) -> WeightsByLayer:
    if "layer_names" in file.attrs:  # legacy weights-only (the official files)
        return _read_legacy_group(file)
    if "model_weights" in file:  # legacy full model, model.save("x.h5")
        return _read_legacy_group(file["model_weights"])
    if "layers" in file:  # Keras 3 .weights.h5
        weights = {}
        for group in file["layers"].values():
            if "vars" not in group:
                continue
            variables = group["vars"]
            if "name" not in variables.attrs:
                raise ValueError(
                    f"{path}: this .weights.h5 file does not record layer names (written "
                    "before Keras 3.x stored them); load it with model.load_weights()"
                )
            if len(variables):
                weights[_decode(variables.attrs["name"])] = [
                    variables[str(index)] for index in range(len(variables))
                ]
        return weights
    raise ValueError(f"{path}: HDF5 file without Keras weights (no layers or layer_names)")


def _read_legacy_group(group: h5py.Group) -> WeightsByLayer:
    weights = {}
    for layer_name in (_decode(name) for name in group.attrs["layer_names"]):
        names = [_decode(name) for name in group[layer_name].attrs["weight_names"]]
        if names:
            weights[layer_name] = [group[layer_name][name] for name in names]
    return weights


def read_torch_file(path: str) -> dict[str, np.ndarray]:
    """A flat `{key: array}` state dict from a `.safetensors` file or a torch pickle, read
    lazily: each array is mapped from the file, and only the ones used are read.

    Torch pickles are read with `weights_only=True`, which refuses arbitrary objects.
    Checkpoints that wrap the state dict under "state_dict" or "model" are unwrapped.
    bfloat16 tensors become float32, which holds their values exactly (numpy has no
    bfloat16); sparse, quantised and float8 tensors are refused by name.
    """
    if path.lower().endswith(SAFETENSORS_SUFFIX):
        return read_safetensors(path)
    try:
        import torch
    except ImportError as error:
        raise ValueError(
            f"reading {path!r} needs PyTorch (pip install 'keras-vgg[torch]'), or convert "
            "it to .safetensors, which loads without torch"
        ) from error
    try:
        try:
            checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as error:
            if "mmap" not in str(error):
                raise
            # Files in torch's legacy (pre-1.6) format cannot be mapped: read whole.
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises RuntimeError, UnpicklingError, EOFError...
        raise ValueError(
            f"cannot read weights file {path!r} as a torch state dict with "
            f"weights_only=True: truncated, corrupted, or it holds more than tensors "
            f"({type(error).__name__}: {error})"
        ) from error
    for wrapper in ("state_dict", "model"):
        if isinstance(checkpoint, dict) and isinstance(checkpoint.get(wrapper), dict):
            checkpoint = checkpoint[wrapper]
    if not isinstance(checkpoint, dict):
        raise ValueError(f"{path}: expected a state dict, found {type(checkpoint).__name__}")
    return {key: _torch_array(value, key, path) for key, value in checkpoint.items()
            if isinstance(value, torch.Tensor)}


def _torch_array(tensor, key: str, path: str) -> np.ndarray:
    """A dense CPU tensor as numpy, sharing its (mapped) memory; bfloat16 as float32."""
    import torch

    if tensor.layout != torch.strided or tensor.is_quantized:
        kind = "quantised" if tensor.is_quantized else f"{tensor.layout}".replace("torch.", "")
        raise ValueError(f"{path}: tensor {key!r} is {kind}; keras_vgg reads dense floating "
                         "point tensors")
    if tensor.dtype == torch.bfloat16:
        tensor = tensor.float()
    try:
        return tensor.detach().numpy()
    except (TypeError, RuntimeError) as error:  # float8 and other dtypes numpy lacks
        raise ValueError(f"{path}: tensor {key!r} is stored as {tensor.dtype}, which "
                         "keras_vgg does not read (float32, float16, bfloat16, float64)"
                         ) from error


# safetensors' dtypes that load, as numpy reads their little-endian bytes; BF16 is the top
# half of a float32.
_SAFETENSORS_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "<u2",
                       "I64": "<i8", "I32": "<i4", "I16": "<i2", "I8": "i1", "U8": "u1",
                       "BOOL": "?"}
_MAX_SAFETENSORS_HEADER = 100 << 20  # the bound safetensors itself sets


def read_safetensors(path: str) -> dict[str, np.ndarray]:
    """`{name: array}` of a `.safetensors` file, each array mapped from the file (nothing is
    read until used); BF16 tensors are converted to float32 (read then).

    Raises:
      ValueError: the header is damaged, a tensor lies outside the data or disagrees with
        its shape, or has a dtype numpy cannot hold (F8_*); the message names the tensor.
    """
    def damaged(why: str) -> ValueError:
        return ValueError(f"cannot read weights file {path!r}: truncated or not a "
                          f"safetensors file ({why})")

    try:
        size = os.path.getsize(path)
        with open(path, "rb") as file:
            prefix = file.read(8)
            if len(prefix) < 8:
                raise damaged("shorter than its header")
            header_size = int.from_bytes(prefix, "little")
            if header_size > min(_MAX_SAFETENSORS_HEADER, size - 8):
                raise damaged(f"a header of {header_size} bytes")
            header = json.loads(file.read(header_size))
    except OSError as error:
        raise damaged(error.strerror) from error
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise damaged(f"its header is not JSON: {error}") from error
    if not isinstance(header, dict):
        raise damaged("its header is not a JSON object")
    data_start, arrays = 8 + header_size, {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype, shape = entry["dtype"], tuple(int(side) for side in entry["shape"])
            begin, end = (int(offset) for offset in entry["data_offsets"])
        except (TypeError, KeyError, ValueError) as error:
            raise damaged(f"tensor {name!r} has no dtype, shape and data_offsets") from error
        if dtype not in _SAFETENSORS_DTYPES:
            raise ValueError(f"{path}: tensor {name!r} is stored as {dtype}, which keras_vgg "
                             "does not read (F32, F16, BF16, F64)")
        stored = np.dtype(_SAFETENSORS_DTYPES[dtype])
        if (min(shape, default=0) < 0 or not 0 <= begin <= end <= size - data_start
                or end - begin != int(np.prod(shape)) * stored.itemsize):
            raise damaged(f"tensor {name!r} of shape {shape} and {dtype} does not fit bytes "
                          f"{begin} to {end} of the data")
        array = (np.memmap(path, dtype=stored, mode="r", offset=data_start + begin,
                           shape=shape) if end > begin else np.zeros(shape, stored))
        if dtype == "BF16":
            array = (np.asarray(array, np.uint32) << 16).view(np.float32)
        arrays[name] = array
    return arrays


# The checkpoints' modules of fc1, fc2 and predictions.
_TORCH_HEAD_MODULES = {
    module: layer
    for modules in (("classifier.0", "classifier.3", "classifier.6"),  # torchvision
                    ("pre_logits.fc1", "pre_logits.fc2", "head.fc"))  # timm
    for module, layer in zip(modules, configs.HEAD_LAYERS, strict=True)
}
_FEATURE_MODULE = re.compile(r"^features\.(\d+)$")


def from_torch_state_dict(
    state_dict: Mapping[str, np.ndarray], model: keras.Model, *, source: str
) -> WeightsByLayer:
    """Maps a torchvision / timm VGG state dict onto the layer names of `model`.

    The `features.N` modules with parameters (convs, and BatchNorms in `_bn` models) pair in
    order with the model's conv and BatchNorm layers. Conv kernels go from torch's
    `[out, in, kh, kw]` to Keras' `[kh, kw, in, out]`; fc1's input is reordered from
    torch's NCHW flatten to Keras' NHWC one (the feature map's size is read from `model`).
    """
    modules: dict[str, dict[str, np.ndarray]] = {}
    for key, value in state_dict.items():
        module, _, parameter = key.rpartition(".")
        modules.setdefault(module, {})[parameter] = np.asarray(value)

    feature_modules = sorted(
        (int(match.group(1)), module)
        for module in modules
        if (match := _FEATURE_MODULE.match(module))
    )
    feature_layers = [
        layer for layer in model.layers if layer.weights and layer.name not in configs.HEAD_LAYERS
    ]
    weights: WeightsByLayer = {}
    for (_, module), layer in zip(feature_modules, feature_layers, strict=False):
        arrays = _convert_feature_module(modules[module], layer, module, source)
        check_shapes(layer, arrays, source=source)  # so the first mismatch in order is named
        weights[layer.name] = arrays
    if len(feature_modules) > len(feature_layers):
        surplus = feature_modules[len(feature_layers)][1]
        raise ValueError(
            f"{source}: checkpoint module {surplus!r} has no counterpart: the model has only "
            f"{len(feature_layers)} conv/BatchNorm layers; is it a checkpoint of a deeper "
            "VGG configuration?"
        )

    for module, layer_name in _TORCH_HEAD_MODULES.items():
        if module in modules:
            kernel, bias = _tensors(modules[module], ("weight", "bias"), module, layer_name, source)
            if kernel.ndim not in (2, 4) or kernel.size == 0:
                raise ValueError(
                    f"{source}: tensor {module}.weight (for layer {layer_name!r}) has shape "
                    f"{tuple(kernel.shape)}; a Linear or 1x1-conv weight has 2 or 4 "
                    "non-empty dimensions")
            weights[layer_name] = [_head_kernel(kernel, model, layer_name), bias]
    unknown = sorted(
        module for module in modules
        if not _FEATURE_MODULE.match(module) and module not in _TORCH_HEAD_MODULES
    )
    if unknown:
        raise ValueError(f"{source}: not a torchvision/timm VGG checkpoint: modules {unknown}")
    return weights


def _tensors(parameters, names, module: str, layer_name: str, source: str) -> list[np.ndarray]:
    missing = [name for name in names if name not in parameters]
    if missing:
        raise ValueError(
            f"{source}: checkpoint module {module!r} (for layer {layer_name!r}) lacks "
            f"{[f'{module}.{name}' for name in missing]}"
        )
    for name in names:
        check_floating(parameters[name].dtype, what=f"tensor {module}.{name}", source=source)
    return [parameters[name] for name in names]


def _convert_feature_module(parameters, layer, module: str, source: str) -> list[np.ndarray]:
    if isinstance(layer, keras.layers.BatchNormalization):
        names = ("weight", "bias", "running_mean", "running_var")
        if "running_mean" not in parameters:
            raise ValueError(
                f"{source}: model layer {layer.name!r} is a BatchNorm but checkpoint module "
                f"{module!r} is not (no running_mean); is it a checkpoint without batch norm?"
            )
        return _tensors(parameters, names, module, layer.name, source)
    if parameters.get("weight") is None or parameters["weight"].ndim != 4:
        raise ValueError(
            f"{source}: model layer {layer.name!r} is a conv but checkpoint module {module!r} "
            f"holds {sorted(parameters)}; is it a checkpoint with batch norm?"
        )
    kernel, bias = _tensors(parameters, ("weight", "bias"), module, layer.name, source)
    return [kernel.transpose(2, 3, 1, 0), bias]


def _head_kernel(kernel: np.ndarray, model: keras.Model, layer_name: str) -> np.ndarray:
    """A torch Linear `[out, in]` or conv `[out, in, kh, kw]` weight as a Dense kernel."""
    out_features = kernel.shape[0]
    if layer_name == configs.FC_LAYERS[0] and configs.FLATTEN_LAYER in {
            layer.name for layer in model.layers}:
        flatten = model.get_layer(configs.FLATTEN_LAYER)
        _, *feature_map = flatten.input.shape
        if flatten.data_format == "channels_first":  # Keras flattens it as (h, w, c) too
            feature_map = feature_map[1:] + feature_map[:1]
        height, width, channels = feature_map
        if kernel.size == out_features * height * width * channels:
            # [out, C, H, W] (timm's conv, or torchvision's NCHW flatten) -> [H*W*C, out].
            kernel = kernel.reshape(out_features, channels, height, width)
            return kernel.transpose(2, 3, 1, 0).reshape(-1, out_features)
    return kernel.reshape(out_features, -1).T


def warm_start_from_config_a(model: keras.Model, path: str | os.PathLike) -> list[str]:
    """Sect. 3.1's initialisation of deeper nets: copies the first four conv layers and the
    three fully-connected layers of a trained config-A checkpoint into the same-named
    layers of `model`; the rest keeps its initialisation. A net of 5x5 convolutions (the
    paper's control net, `configs.with_pairs_as_5x5`) has no 3x3 layer to take A's convs:
    it gets the fully-connected layers only. Returns the copied layer names.

    Raises:
      ValueError: the file is not a config-A checkpoint, or its layers do not fit `model`
        (width, classes), naming the file and the layer; `model` is then unchanged.
    """
    path = _existing_file(path, what="warm-start file")
    if not path.lower().endswith(KERAS_SUFFIXES):
        raise ValueError(
            f"warm-start file {path!r}: expected a Keras file {KERAS_SUFFIXES}; convert a "
            "torch checkpoint with keras_vgg.VGG11(weights=PATH).save_weights('a.weights.h5')"
        )
    a_convs = _config_a_conv_names()
    layers = {layer.name: layer for layer in model.layers}
    all_5x5 = all(layer.kernel_size == (5, 5) for layer in model.layers
                  if isinstance(layer, keras.layers.Conv2D))
    copied = ([] if all_5x5 else a_convs[:4]) + list(configs.HEAD_LAYERS)
    with open_keras_file(path) as weights:
        foreign = sorted(set(weights) - set(a_convs) - set(configs.HEAD_LAYERS))
        if foreign:
            raise ValueError(f"{path}: not a config-A checkpoint: it has layers {foreign[:5]} "
                             "that config A lacks")
        for name in copied:
            if name not in weights:
                raise ValueError(f"{path}: the config-A checkpoint has no layer {name!r}")
            if name not in layers:
                raise ValueError(f"{path}: the model has no layer {name!r} to warm-start")
            check_shapes(layers[name], weights[name], source=path)
        plan = [(layers[name], _read_checked(layers[name], weights[name], path))
                for name in copied]
    for layer, arrays in plan:
        layer.set_weights(arrays)
    return copied


def _config_a_conv_names() -> list[str]:
    return [
        configs.conv_layer(block, index)
        for block, kernels in enumerate(configs.TABLE_1["A"].kernel_sizes, start=1)
        for index in range(1, len(kernels) + 1)
    ]

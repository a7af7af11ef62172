import functools
import hashlib
import os
import sys

import h5py
import keras
import numpy as np
import pytest
from conftest import NARROW, forward
from keras.src.legacy.saving import legacy_h5_format
from safetensors.numpy import save_file

import keras_vgg
from keras_vgg import configs
from keras_vgg import weights as weight_files

try:
    import torch
    import torch.nn.functional as F
except ImportError:  # the torch-free tests below still run
    torch = F = None
needs_torch = pytest.mark.skipif(torch is None, reason="torch reads .pth and is the reference")


def save_official_layout(model, path):
    """A weights-only legacy HDF5 file, the layout of the official keras.applications files."""
    with h5py.File(path, "w") as file:
        legacy_h5_format.save_weights_to_hdf5_group(file, model)
    return path


def snapshot(model):
    return [np.array(w) for w in model.get_weights()]


def assert_unchanged(model, before):
    for old, new in zip(before, model.get_weights(), strict=True):
        np.testing.assert_array_equal(old, new)


def assert_refused(model, path, pattern):
    """Loading `path` raises a ValueError matching `pattern` and leaves `model` as it was."""
    before = snapshot(model)
    with pytest.raises(ValueError, match=pattern):
        keras_vgg.load_weights(model, path)
    assert_unchanged(model, before)


# --- Official Keras files --------------------------------------------------------------


@pytest.fixture(scope="module")
def references() -> dict:
    """keras.applications' nets of random weights, `{(builder, include_top): model}`, made
    by the first test that needs one."""
    return {}


@pytest.mark.full_size
@pytest.mark.parametrize(
    "ours, theirs, include_top, writer",
    [
        (keras_vgg.VGG16, keras.applications.VGG16, True, "official"),
        (keras_vgg.VGG16, keras.applications.VGG16, True, "weights.h5"),
        (keras_vgg.VGG19, keras.applications.VGG19, True, "official"),
        (keras_vgg.VGG16, keras.applications.VGG16, False, "official"),
        (keras_vgg.VGG16, keras.applications.VGG16, False, "weights.h5"),
        (keras_vgg.VGG19, keras.applications.VGG19, False, "official"),
        (keras_vgg.VGG19, keras.applications.VGG19, False, "model.h5"),
    ],
)
def test_keras_applications_weights_give_the_same_outputs(
    ours, theirs, include_top, writer, tmp_path, images, references
):
    if (theirs, include_top) not in references:  # one random net for each file writer
        references[theirs, include_top] = theirs(weights=None, include_top=include_top)
    reference = references[theirs, include_top]
    if writer == "official":
        path = save_official_layout(reference, tmp_path / "reference.h5")
    elif writer == "weights.h5":
        path = tmp_path / "reference.weights.h5"
        reference.save_weights(path)
    else:
        path = tmp_path / "reference.h5"
        reference.save(path)
    model = ours(weights=str(path), include_top=include_top)
    x = keras_vgg.preprocess_input(images(2, 224))
    expected = forward(reference, x)
    assert np.abs(forward(model, x) - expected).max() < 1e-5
    # Keras' own loader reads the same file into our model too (dropout layers hold no
    # weights), over kernels of zeros: a layer it left out would give other outputs.
    other = ours(weights=None, include_top=include_top, kernel_initializer="zeros")
    other.load_weights(path)
    assert np.abs(forward(other, x) - expected).max() < 1e-5


@pytest.mark.full_size
def test_imagenet_download_loads_the_file_with_the_published_md5(tmp_path, monkeypatch, images):
    reference = keras.applications.VGG16(weights=None, include_top=False)
    served = save_official_layout(reference, tmp_path / "served.h5")
    md5 = hashlib.md5(served.read_bytes()).hexdigest()
    fname = "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
    table = dict(weight_files.IMAGENET_WEIGHTS)
    table[("D", False)] = weight_files.PublishedWeights(fname, served.as_uri(), md5)
    monkeypatch.setattr(weight_files, "IMAGENET_WEIGHTS", table)
    cache = tmp_path / "cache"
    cache.mkdir()  # get_file falls back to /tmp/.keras for a folder it cannot write
    monkeypatch.setattr(
        weight_files, "fetch_imagenet_weights",
        functools.partial(weight_files.fetch_imagenet_weights, cache_dir=str(cache)),
    )
    model = keras_vgg.VGG16(include_top=False)  # weights="imagenet" is the default
    assert (cache / "models" / fname).is_file()
    x = keras_vgg.preprocess_input(images(1, 64))
    np.testing.assert_allclose(forward(model, x), forward(reference, x),
                               atol=1e-5)


def test_imagenet_hash_mismatch_names_the_file(tmp_path, monkeypatch):
    corrupt = tmp_path / "served.h5"
    corrupt.write_bytes(b"not the published weights")
    fname = "vgg19_weights_tf_dim_ordering_tf_kernels.h5"
    published = weight_files.IMAGENET_WEIGHTS[("E", True)]
    table = dict(weight_files.IMAGENET_WEIGHTS)
    table[("E", True)] = weight_files.PublishedWeights(fname, corrupt.as_uri(), published.md5)
    monkeypatch.setattr(weight_files, "IMAGENET_WEIGHTS", table)
    cache = tmp_path / "cache"
    cache.mkdir()
    with pytest.raises(ValueError, match=f"{fname}.*published MD5 {published.md5}"):
        weight_files.fetch_imagenet_weights(
            configs.TABLE_1["E"], include_top=True, cache_dir=str(cache)
        )


def test_the_imagenet_file_is_hashed_again_only_once_it_has_changed(tmp_path, monkeypatch):
    served = tmp_path / "served.h5"
    served.write_bytes(b"published weights" * 1000)
    fname = "vgg16_weights_tf_dim_ordering_tf_kernels.h5"
    table = dict(weight_files.IMAGENET_WEIGHTS)
    table[("D", True)] = weight_files.PublishedWeights(
        fname, served.as_uri(), hashlib.md5(served.read_bytes()).hexdigest())
    monkeypatch.setattr(weight_files, "IMAGENET_WEIGHTS", table)
    (tmp_path / "cache").mkdir()

    def fetch():
        return weight_files.fetch_imagenet_weights(configs.TABLE_1["D"], include_top=True,
                                                   cache_dir=str(tmp_path / "cache"))

    cached = fetch()
    served.unlink()  # from now on, only the cached file
    # Other bytes of the same size, under the same modification time: not hashed again.
    written = os.stat(cached).st_mtime_ns
    with open(cached, "r+b") as file:
        file.write(b"P")
    os.utime(cached, ns=(written, written))
    assert fetch() == cached
    # Touched: hashed, found to differ, and not to be fetched again.
    os.utime(cached)
    with pytest.raises(ValueError, match=fname):
        fetch()


def test_published_files_are_the_keras_applications_ones():
    assert weight_files.IMAGENET_WEIGHTS[("D", True)].origin == (
        keras.src.applications.vgg16.WEIGHTS_PATH
    )
    assert weight_files.IMAGENET_WEIGHTS[("E", False)].origin == (
        keras.src.applications.vgg19.WEIGHTS_PATH_NO_TOP
    )


# --- torchvision / timm checkpoints -------------------------------------------------------


def torchvision_state_dict(config, *, width_multiplier, classes, seed=0):
    """Random weights under torchvision's exact keys and shapes (`vgg.py`'s make_layers):
    `features.N` counts conv, [BatchNorm2d], ReLU and MaxPool2d modules; the classifier is
    Linear(C*7*7, 4096), ReLU, Dropout, Linear(4096, 4096), ReLU, Dropout, Linear(4096, classes).
    """
    rng = np.random.default_rng(seed)
    state, index, channels = {}, 0, 3

    def normal(std, *shape):
        return rng.normal(0, std, shape).astype("float32")

    for kernels, width in zip(config.kernel_sizes, config.widths, strict=True):
        filters = configs.scaled_width(width, width_multiplier)
        for kernel in kernels:
            state[f"features.{index}.weight"] = normal(
                np.sqrt(2 / (kernel * kernel * channels)), filters, channels, kernel, kernel)
            state[f"features.{index}.bias"] = normal(0.1, filters)
            index += 1
            if config.batch_norm:
                state[f"features.{index}.weight"] = 1 + normal(0.1, filters)
                state[f"features.{index}.bias"] = normal(0.1, filters)
                state[f"features.{index}.running_mean"] = normal(0.5, filters)
                state[f"features.{index}.running_var"] = rng.uniform(0.5, 2, filters).astype(
                    "float32")
                state[f"features.{index}.num_batches_tracked"] = np.array(7, dtype="int64")
                index += 1
            index += 1  # ReLU
            channels = filters
        index += 1  # MaxPool2d
    units = configs.scaled_width(4096, width_multiplier)
    for module, (fan_out, fan_in) in {
        "classifier.0": (units, channels * 7 * 7),
        "classifier.3": (units, units),
        "classifier.6": (classes, units),
    }.items():
        state[f"{module}.weight"] = normal(np.sqrt(2 / fan_in), fan_out, fan_in)
        state[f"{module}.bias"] = normal(0.1, fan_out)
    return state


def as_timm(state, channels):
    """timm's layout: fc1 and fc2 as 7x7 and 1x1 convs (`pre_logits`), `head.fc`."""
    timm = {k: v for k, v in state.items() if k.startswith("features.")}
    timm["pre_logits.fc1.weight"] = state["classifier.0.weight"].reshape(-1, channels, 7, 7)
    timm["pre_logits.fc2.weight"] = state["classifier.3.weight"].reshape(
        *state["classifier.3.weight"].shape, 1, 1)
    timm["head.fc.weight"] = state["classifier.6.weight"]
    for ours, theirs in [("0", "pre_logits.fc1"), ("3", "pre_logits.fc2"), ("6", "head.fc")]:
        timm[f"{theirs}.bias"] = state[f"classifier.{ours}.bias"]
    return timm


def torch_reference_logits(state, config, images_nhwc):
    """torchvision's VGG forward pass (eval mode), in torch, on NCHW tensors."""
    t = {k: torch.from_numpy(np.asarray(v)) for k, v in state.items()}
    x = torch.from_numpy(images_nhwc).permute(0, 3, 1, 2)
    index = 0
    with torch.no_grad():
        for kernels in config.kernel_sizes:
            for kernel in kernels:
                x = F.conv2d(x, t[f"features.{index}.weight"], t[f"features.{index}.bias"],
                             padding=kernel // 2)
                index += 1
                if config.batch_norm:
                    p = f"features.{index}."
                    x = F.batch_norm(x, t[p + "running_mean"], t[p + "running_var"],
                                     t[p + "weight"], t[p + "bias"], training=False, eps=1e-5)
                    index += 1
                x = F.relu(x)
                index += 1
            x = F.max_pool2d(x, 2)
            index += 1
        x = torch.flatten(F.adaptive_avg_pool2d(x, (7, 7)), 1)
        x = F.relu(F.linear(x, t["classifier.0.weight"], t["classifier.0.bias"]))
        x = F.relu(F.linear(x, t["classifier.3.weight"], t["classifier.3.bias"]))
        return F.linear(x, t["classifier.6.weight"], t["classifier.6.bias"]).numpy()


def write_checkpoint(state, path):
    if path.suffix == ".safetensors":
        save_file(state, str(path))
    else:
        torch.save({k: torch.from_numpy(np.asarray(v)) for k, v in state.items()}, path)
    return path


@needs_torch
@pytest.mark.parametrize(
    "name, layout, suffix",
    [("A", "torchvision", ".pth"), ("A", "timm", ".safetensors"),
     ("B", "torchvision", ".safetensors"), ("D-BN", "torchvision", ".pth"),
     ("E-BN", "timm", ".pth")],
)
def test_torch_checkpoints_compute_the_same_forward_pass(name, layout, suffix, tmp_path):
    config = configs.get(name)
    state = torchvision_state_dict(config, width_multiplier=NARROW, classes=10)
    last_width = configs.scaled_width(config.widths[-1], NARROW)
    path = write_checkpoint(
        state if layout == "torchvision" else as_timm(state, last_width),
        tmp_path / f"checkpoint{suffix}",
    )
    model = keras_vgg.vgg(name, weights=str(path), width_multiplier=NARROW, classes=10,
                          classifier_activation=None)
    x = np.random.default_rng(1).normal(0, 1, (2, 224, 224, 3)).astype("float32")
    expected = torch_reference_logits(state, config, x)
    np.testing.assert_allclose(forward(model, x), expected, rtol=1e-4, atol=1e-4)


def test_torch_checkpoint_without_the_top_feeds_feature_extraction(tmp_path):
    config = configs.get("B")
    state = torchvision_state_dict(config, width_multiplier=NARROW, classes=1000)
    path = write_checkpoint(state, tmp_path / "vgg13.safetensors")
    model = keras_vgg.VGG13(weights=str(path), include_top=False, width_multiplier=NARROW)
    kernel = np.asarray(model.get_layer("block1_conv1").kernel)
    np.testing.assert_array_equal(kernel, state["features.0.weight"].transpose(2, 3, 1, 0))


@needs_torch
def test_wrapped_pth_state_dict_loads(tmp_path):
    state = torchvision_state_dict(configs.get("A"), width_multiplier=NARROW, classes=10)
    path = tmp_path / "wrapped.pth"
    torch.save({"epoch": 3, "state_dict": {k: torch.from_numpy(v) for k, v in state.items()}},
               path)
    model = keras_vgg.VGG11(weights=str(path), width_multiplier=NARROW, classes=10)
    np.testing.assert_array_equal(
        np.asarray(model.get_layer("predictions").kernel), state["classifier.6.weight"].T)


class NotATensor:
    pass


@needs_torch
def test_pth_with_arbitrary_objects_is_refused(tmp_path):
    path = tmp_path / "pickled.pth"
    torch.save({"features.0.weight": NotATensor()}, path)
    with pytest.raises(ValueError, match="pickled.pth.*weights_only=True"):
        keras_vgg.VGG11(weights=str(path), width_multiplier=NARROW)


# --- Bad files: clear error, model unchanged ------------------------------------------


@pytest.fixture
def narrow_d():
    return keras_vgg.vgg("D", width_multiplier=NARROW, input_shape=(32, 32, 3))


def keras_file(model, path):
    model.save_weights(path)
    return path


@pytest.mark.parametrize(
    "name, error",
    [("d.weights.h5", "truncated"), ("d.safetensors", "truncated"),
     pytest.param("d.pth", "weights_only", marks=needs_torch)],
)
def test_truncated_file_is_refused_and_model_unchanged(name, error, tmp_path, narrow_d):
    path = tmp_path / name
    if name.endswith(".h5"):
        keras_file(keras_vgg.vgg("D", width_multiplier=NARROW, input_shape=(32, 32, 3)), path)
    else:
        state = torchvision_state_dict(configs.get("D"), width_multiplier=NARROW, classes=1000)
        write_checkpoint(state, path)
    with open(path, "r+b") as file:
        file.truncate(os.path.getsize(path) // 2)
    assert_refused(narrow_d, path, f"{name}.*{error}")


def test_keras_file_of_a_shallower_config_names_the_missing_layer(tmp_path):
    path = keras_file(keras_vgg.vgg("D", width_multiplier=NARROW), tmp_path / "d.weights.h5")
    model = keras_vgg.vgg("E", width_multiplier=NARROW)
    assert_refused(model, path, "d.weights.h5: no weights for layer 'block3_conv4'")


def test_keras_file_of_a_deeper_config_names_the_extra_layers(tmp_path, narrow_d):
    path = save_official_layout(keras_vgg.vgg("E", width_multiplier=NARROW, input_shape=(32,) * 2
                                              + (3,)), tmp_path / "e.h5")
    assert_refused(narrow_d, path, r"e.h5: .*layers the model does not have.*block3_conv4")


def test_keras_file_of_another_width_names_the_first_layer(tmp_path, narrow_d):
    path = keras_file(keras_vgg.vgg("D", width_multiplier=2 * NARROW, input_shape=(32, 32, 3)),
                      tmp_path / "wide.weights.h5")
    assert_refused(narrow_d, path, r"wide.weights.h5: layer 'block1_conv1' expects")


def test_batch_norm_keras_file_into_plain_model(tmp_path, narrow_d):
    path = keras_file(keras_vgg.vgg("D-BN", width_multiplier=NARROW, input_shape=(32, 32, 3)),
                      tmp_path / "bn.weights.h5")
    with pytest.raises(ValueError, match=r"bn.weights.h5: .*block1_bn1"):
        keras_vgg.load_weights(narrow_d, path)


@pytest.mark.parametrize(
    "checkpoint_config, model_config, error",
    [
        ("A", "D", r"layer 'block1_conv2' expects"),
        ("D-BN", "D", r"block1_conv2' is a conv but checkpoint module 'features.1'"),
        ("D", "D-BN", r"block1_bn1' is a BatchNorm but checkpoint module 'features.2'"),
        ("E", "D", r"layer 'block4_conv1' expects"),
        ("E-BN", "D-BN", r"layer 'block4_conv1' expects"),
    ],
)
def test_torch_checkpoint_of_another_architecture(checkpoint_config, model_config, error,
                                                  tmp_path):
    state = torchvision_state_dict(configs.get(checkpoint_config), width_multiplier=NARROW,
                                   classes=1000)
    path = write_checkpoint(state, tmp_path / "other.safetensors")
    model = keras_vgg.vgg(model_config, width_multiplier=NARROW)
    assert_refused(model, path, "other.safetensors.*" + error)


def test_checkpoint_with_surplus_matching_modules(tmp_path, narrow_d):
    state = torchvision_state_dict(configs.get("D"), width_multiplier=NARROW, classes=1000)
    state["features.31.weight"] = np.zeros((32, 32, 3, 3), "float32")
    path = write_checkpoint(state, tmp_path / "deeper.safetensors")
    with pytest.raises(ValueError, match=r"deeper.safetensors: .*'features.31' has no counterpart"):
        keras_vgg.load_weights(narrow_d, path)


@pytest.mark.parametrize("missing", ["features.0.bias", "features.1.running_var",
                                     "classifier.6.bias"])
def test_checkpoint_missing_a_tensor_names_it(missing, tmp_path):
    state = torchvision_state_dict(configs.get("A-BN"), width_multiplier=NARROW, classes=1000)
    del state[missing]
    path = write_checkpoint(state, tmp_path / "partial.safetensors")
    model = keras_vgg.vgg("A-BN", width_multiplier=NARROW)
    with pytest.raises(ValueError, match=rf"partial.safetensors: .*lacks \['{missing}'\]"):
        keras_vgg.load_weights(model, path)


def test_checkpoint_of_another_model_family(tmp_path, narrow_d):
    path = tmp_path / "resnet.safetensors"
    save_file({"conv1.weight": np.zeros((64, 3, 7, 7), "float32")}, str(path))
    with pytest.raises(ValueError, match=r"resnet.safetensors: not a torchvision/timm VGG"):
        keras_vgg.load_weights(narrow_d, path)


def test_unknown_format(tmp_path, narrow_d):
    path = tmp_path / "weights.npz"
    path.write_bytes(b"")
    with pytest.raises(ValueError, match="weights.npz.*unknown format"):
        keras_vgg.load_weights(narrow_d, path)


def test_h5_without_keras_weights(tmp_path, narrow_d):
    path = tmp_path / "data.h5"
    with h5py.File(path, "w") as file:
        file["x"] = np.zeros(3)
    with pytest.raises(ValueError, match="data.h5: HDF5 file without Keras weights"):
        keras_vgg.load_weights(narrow_d, path)


def test_keras_archive_loads(tmp_path, narrow_d, images):
    source = keras_vgg.vgg("D", width_multiplier=NARROW, input_shape=(32, 32, 3))
    source.save(tmp_path / "d.keras")
    keras_vgg.load_weights(narrow_d, tmp_path / "d.keras")
    x = images(2, 32)
    np.testing.assert_allclose(forward(narrow_d, x), forward(source, x),
                               atol=1e-6)


def test_pth_without_torch_says_how_to_get_it(tmp_path, narrow_d, monkeypatch):
    path = tmp_path / "vgg16.pth"
    path.write_bytes(b"\x80")
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` raises ImportError
    with pytest.raises(ValueError, match=r"vgg16.pth.*needs PyTorch.*safetensors"):
        keras_vgg.load_weights(narrow_d, path)


# --- Hostile files: nothing outside the file is read, nothing huge is allocated ---------

SECRET = b"TOPSECRET-KEY-42"  # 16 bytes: the 4 float32 biases of block1_conv1 at NARROW


def write_secret(tmp_path):
    """A local file the crafted weight files point at: the secret, repeated."""
    path = tmp_path / "secret.bin"
    path.write_bytes(SECRET * 64)
    return path


def secret_in(model) -> bool:
    return any(SECRET in np.asarray(w).tobytes() for w in model.get_weights())


def replace_dataset(path, name, make):
    """Replaces dataset `name` of HDF5 file `path` with what `make(file, name)` creates."""
    with h5py.File(path, "r+") as file:
        del file[name]
        make(file, name)


BIAS = "layers/conv2d/vars/1"  # block1_conv1's bias in a Keras 3 .weights.h5


def external_storage(tmp_path):
    def make(file, name):
        file.create_dataset(name, shape=(4,), dtype="float32",
                            external=[(str(write_secret(tmp_path)), 0, 16)])
    return make


def secret_h5(tmp_path):
    """Another HDF5 file, whose dataset "secret" holds the secret as 4 float32."""
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as file:
        file["secret"] = np.frombuffer(SECRET, "float32")
    return str(other)


def external_link(tmp_path):
    other = secret_h5(tmp_path)

    def make(file, name):
        file[name] = h5py.ExternalLink(other, "/secret")
    return make


def soft_link_to_an_external_link(tmp_path):
    link = external_link(tmp_path)

    def make(file, name):
        link(file, "/outside")
        file[name] = h5py.SoftLink("/outside")
    return make


def virtual_dataset(tmp_path):
    other = secret_h5(tmp_path)

    def make(file, name):
        layout = h5py.VirtualLayout(shape=(4,), dtype="float32")
        layout[:] = h5py.VirtualSource(other, "secret", shape=(4,))
        file.create_virtual_dataset(name, layout)
    return make


@pytest.mark.parametrize("craft, error", [
    (external_storage, r"dataset 'layers/conv2d/vars/1' is stored outside the file"),
    (external_link, r"'layers/conv2d/vars/1' is an HDF5 ExternalLink"),
    (soft_link_to_an_external_link, r"'layers/conv2d/vars/1' is an HDF5 SoftLink"),
    (virtual_dataset, r"dataset 'layers/conv2d/vars/1' is stored outside the file \(virtual\)"),
])
def test_h5_reaching_outside_itself_is_refused(craft, error, tmp_path, narrow_d):
    path = keras_file(keras_vgg.vgg("D", width_multiplier=NARROW, input_shape=(32, 32, 3)),
                      tmp_path / "crafted.weights.h5")
    replace_dataset(path, BIAS, craft(tmp_path))
    with h5py.File(path) as file:  # the crafted file does read the secret through h5py
        assert file[BIAS][()].tobytes() == SECRET
    assert_refused(narrow_d, path, "crafted.weights.h5: " + error)
    assert not secret_in(narrow_d)
    with pytest.raises(ValueError, match=error):
        keras_vgg.vgg("D", width_multiplier=NARROW, input_shape=(32, 32, 3), weights=str(path))


@pytest.mark.slow
def test_an_export_after_a_refused_file_holds_nothing_of_it(tmp_path, narrow_d):
    from keras_vgg import serving

    path = keras_file(keras_vgg.vgg("D", width_multiplier=NARROW, input_shape=(32, 32, 3)),
                      tmp_path / "crafted.weights.h5")
    replace_dataset(path, BIAS, external_storage(tmp_path))
    with pytest.raises(ValueError):
        keras_vgg.load_weights(narrow_d, path)
    version = serving.export_saved_model(
        narrow_d, str(tmp_path / "export"), model_name="m", warmup=False,
        options=serving.ServingOptions(test_scale=32))
    for root, _, names in os.walk(version):
        for name in names:
            with open(os.path.join(root, name), "rb") as file:
                assert SECRET not in file.read(), name


def peak_bytes(function) -> int:
    """Peak Python and numpy allocation while `function()` runs."""
    import tracemalloc

    tracemalloc.start()
    try:
        function()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def refusal_and_peak_bytes(function) -> tuple[str, int]:
    """The ValueError message `function()` must raise, and the peak allocation before it."""
    refused = []

    def refuse():
        with pytest.raises(ValueError) as error:
            function()
        refused.append(str(error.value))

    peak = peak_bytes(refuse)
    return refused[0], peak


def model_bytes(model) -> int:
    return sum(np.asarray(w).nbytes for w in model.get_weights())


def test_h5_declaring_a_huge_array_is_refused_before_reading_it(tmp_path):
    model = keras_vgg.vgg("D", width_multiplier=NARROW, input_shape=(32, 32, 3))
    path = keras_file(model, tmp_path / "bomb.weights.h5")

    def huge(file, name):  # 1 GiB declared, a few KB stored: chunks of the fill value
        file.create_dataset(name, shape=(16384, 16384), dtype="float32", chunks=(1024, 1024),
                            compression="gzip", fillvalue=1.0)
    replace_dataset(path, "layers/dense/vars/0", huge)  # fc1's kernel
    assert os.path.getsize(path) < 4 << 20  # the whole file, against 1 GiB declared
    message, peak = refusal_and_peak_bytes(lambda: keras_vgg.load_weights(model, path))
    assert "layer 'fc1' expects weights of shapes [(32, 256), (256,)]" in message
    assert "(16384, 16384)" in message
    assert peak < 4 * model_bytes(model) + (8 << 20), peak


def test_keras_archive_zip_bomb_is_refused_before_inflating(tmp_path):
    import zipfile

    model = keras_vgg.vgg("D", width_multiplier=NARROW, input_shape=(32, 32, 3))
    path = tmp_path / "bomb.keras"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open("model.weights.h5", "w", force_zip64=True) as entry:
            chunk = bytes(16 << 20)
            for _ in range(4):  # 64 MiB of zeros: over 4 times the bound on the peak below
                entry.write(chunk)
    assert os.path.getsize(path) < 2 << 20
    message, peak = refusal_and_peak_bytes(lambda: keras_vgg.load_weights(model, path))
    assert "bomb.keras: model.weights.h5 inflates from" in message
    assert peak < 4 * model_bytes(model) + (8 << 20), peak


def test_loading_a_file_costs_about_the_models_own_size(tmp_path):
    model = keras_vgg.vgg("D", width_multiplier=NARROW, input_shape=(32, 32, 3))
    path = keras_file(model, tmp_path / "d.weights.h5")
    peak = peak_bytes(lambda: keras_vgg.load_weights(model, path))
    assert peak < 3 * model_bytes(model) + (8 << 20), peak


@pytest.mark.parametrize("dtype", ["int8", "uint8", "bool"])
def test_safetensors_of_integers_or_booleans_are_refused_naming_the_tensor(dtype, tmp_path,
                                                                        narrow_d):
    state = torchvision_state_dict(configs.get("D"), width_multiplier=NARROW, classes=1000)
    state["features.0.weight"] = (state["features.0.weight"] > 0).astype(dtype)
    path = write_checkpoint(state, tmp_path / "quantised.safetensors")
    assert_refused(narrow_d, path, rf"quantised.safetensors: tensor features.0.weight is "
                                   rf"stored as {dtype}, not as floating point")


def test_h5_of_integers_is_refused_naming_the_layer(tmp_path, narrow_d):
    path = keras_file(keras_vgg.vgg("D", width_multiplier=NARROW, input_shape=(32, 32, 3)),
                      tmp_path / "int.weights.h5")
    replace_dataset(path, BIAS, lambda file, name: file.create_dataset(
        name, data=np.ones(4, "int32")))
    with pytest.raises(ValueError, match=r"int.weights.h5: layer 'block1_conv1', weight "
                                         r"'bias' is stored as int32"):
        keras_vgg.load_weights(narrow_d, path)


def test_damaged_h5_bytes_are_refused_naming_the_layer(tmp_path, narrow_d):
    path = keras_file(keras_vgg.vgg("D", width_multiplier=NARROW, input_shape=(32, 32, 3)),
                      tmp_path / "damaged.weights.h5")
    with h5py.File(path) as file:  # block3_conv1's kernel, stored contiguously
        offset = file["layers/conv2d_4/vars/0"].id.get_offset()
    with open(path, "r+b") as file:  # bytes that read as NaN: HDF5 has no checksum to notice
        file.seek(offset + 128)
        file.write(b"\xff" * 64)
    assert_refused(narrow_d, path, r"damaged.weights.h5: layer 'block3_conv1', weight "
                                   r"'kernel' holds 16 NaN or infinite values")


def test_a_directory_is_named_as_one(tmp_path, narrow_d):
    (tmp_path / "weights.h5").mkdir()
    with pytest.raises(ValueError, match=r"weights.h5' is a directory, not a file"):
        keras_vgg.load_weights(narrow_d, tmp_path / "weights.h5")


# --- Fine-tuning: layers that may be new -------------------------------------------------


def test_a_classifier_for_other_classes_stays_new_and_the_rest_loads(tmp_path):
    source = keras_vgg.vgg("A", width_multiplier=NARROW, input_shape=(32, 32, 3), classes=1000)
    source.save_weights(tmp_path / "a.weights.h5")
    model = keras_vgg.vgg("A", width_multiplier=NARROW, input_shape=(32, 32, 3), classes=10)
    fresh_predictions = model.get_layer("predictions").get_weights()
    assert weight_files.load_weights(model, tmp_path / "a.weights.h5",
                                     new_layers=("predictions",)) == ["predictions"]
    for layer in model.layers[1:]:
        expected = (fresh_predictions if layer.name == "predictions"
                    else source.get_layer(layer.name).get_weights())
        for mine, theirs in zip(layer.get_weights(), expected, strict=True):
            np.testing.assert_array_equal(mine, theirs)
    same = keras_vgg.vgg("A", width_multiplier=NARROW, input_shape=(32, 32, 3), classes=1000)
    assert weight_files.load_weights(same, tmp_path / "a.weights.h5",
                                     new_layers=("predictions",)) == []
    with pytest.raises(ValueError, match="layer 'predictions' expects weights of shapes"):
        weight_files.load_weights(model, tmp_path / "a.weights.h5")


def test_only_the_named_layers_may_be_new(tmp_path):
    wider = keras_vgg.vgg("A", width_multiplier=2 * NARROW, input_shape=(32, 32, 3), classes=3)
    wider.save_weights(tmp_path / "wide.weights.h5")
    model = keras_vgg.vgg("A", width_multiplier=NARROW, input_shape=(32, 32, 3), classes=3)
    before = snapshot(model)
    with pytest.raises(ValueError, match="layer 'block1_conv1' expects weights of shapes"):
        weight_files.load_weights(model, tmp_path / "wide.weights.h5",
                                  new_layers=("predictions",))
    assert_unchanged(model, before)


def test_a_torchvision_checkpoint_onto_other_classes(tmp_path):
    state = torchvision_state_dict(configs.get("A"), width_multiplier=NARROW, classes=1000)
    path = write_checkpoint(state, tmp_path / "vgg11.safetensors")
    model = keras_vgg.vgg("A", width_multiplier=NARROW, classes=4)
    assert weight_files.load_weights(model, path, new_layers=("predictions",)) == [
        "predictions"]
    np.testing.assert_array_equal(model.get_layer("fc2").get_weights()[0],
                                  state["classifier.3.weight"].T)

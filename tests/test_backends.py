"""The models as Keras 3 code: any backend, either image layout, keras.applications' graph.

CI runs this module twice: under the TensorFlow backend with the rest of the suite, and
under `KERAS_BACKEND=jax` (`make test`). TensorFlow's CPU kernels cannot run channels_first
convolutions, so those forward passes run on the other backends only; building runs on all.
"""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from conftest import NARROW, ROOT, forward, names

import keras_vgg
from keras_vgg import anatomy, configs
from keras_vgg.layers import LocalResponseNormalization

LAYOUTS = ("channels_last", "channels_first")
runs_channels_first = pytest.mark.skipif(
    keras.backend.backend() == "tensorflow",
    reason="TensorFlow's CPU kernels have no channels_first convolution; the JAX run covers it")


@pytest.fixture(params=LAYOUTS)
def layout(request):
    """Builds the test's models in each image layout."""
    previous = keras.config.image_data_format()
    keras.config.set_image_data_format(request.param)
    yield request.param
    keras.config.set_image_data_format(previous)


def shaped(height, width, channels, layout):
    return (channels, height, width) if layout == "channels_first" else (height, width, channels)


def in_layout(images, layout):
    """`[b, h, w, c]` numpy images in `layout`."""
    return images.transpose(0, 3, 1, 2) if layout == "channels_first" else images


# --- keras.applications' contract, case by case, in both layouts ----------------------


@pytest.mark.full_size
@pytest.mark.parametrize("builder, last_dim", [(keras_vgg.VGG16, 512), (keras_vgg.VGG19, 512)])
def test_notop_takes_any_number_of_channels(builder, last_dim, layout):
    for channels in (1, 3, 4):
        model = builder(weights=None, include_top=False,
                        input_shape=shaped(None, None, channels, layout))
        expected = shaped(None, None, last_dim, layout)
        assert list(model.outputs[0].shape) == [None, *expected]


@pytest.mark.full_size
def test_notop_takes_a_custom_input_shape_and_tensor(layout):
    model = keras_vgg.VGG16(weights=None, include_top=False,
                            input_shape=shaped(123, 123, 3, layout))
    assert list(model.output_shape) == [None, *shaped(3, 3, 512, layout)]
    inputs = keras.Input(shaped(200, 200, 4, layout), name="custom_input")
    halved = keras.layers.Conv2D(3, 2, strides=2)(inputs)
    model = keras_vgg.VGG19(weights=None, include_top=False, input_tensor=halved)
    assert model.inputs[0].name == "custom_input"
    assert list(model.output_shape) == [None, *shaped(3, 3, 512, layout)]


@pytest.mark.full_size
@pytest.mark.parametrize("pooling", ["avg", "max"])
def test_pooling_gives_one_vector_per_image(pooling, layout):
    model = keras_vgg.VGG16(weights=None, include_top=False, pooling=pooling)
    assert list(model.output_shape) == [None, 512]


@pytest.mark.parametrize("activation, name", [("softmax", "softmax"), (None, "linear"),
                                               ("sigmoid", "sigmoid")])
def test_classifier_activation(activation, name):
    model = keras_vgg.vgg("A", weights=None, width_multiplier=NARROW,
                          classifier_activation=activation)
    assert model.layers[-1].activation.__name__ == name


def test_the_default_builds_predicts_and_round_trips(layout, images):
    model = keras_vgg.vgg("D", width_multiplier=NARROW, classes=1000)
    assert model.input_shape == (None, *shaped(224, 224, 3, layout))
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(model))
    assert restored.get_config() == model.get_config()
    assert [w.shape for w in restored.weights] == [w.shape for w in model.weights]
    if layout == "channels_first" and keras.backend.backend() == "tensorflow":
        return  # TensorFlow's CPU kernels: see `runs_channels_first`
    x = keras_vgg.preprocess_input(in_layout(images(1, 224), layout), data_format=layout)
    probabilities = model.predict(x, verbose=0)
    top = keras_vgg.decode_predictions(probabilities, top=3)
    assert len(top[0]) == 3
    restored.set_weights(model.get_weights())
    np.testing.assert_allclose(forward(restored, x), probabilities, atol=1e-6)


# --- The same numbers in either layout ----------------------------------------------


@runs_channels_first
def test_a_torchvision_checkpoint_loads_into_channels_first(tmp_path, images):
    from safetensors.numpy import save_file
    from test_weights import torchvision_state_dict

    path = str(tmp_path / "vgg11.safetensors")
    save_file(torchvision_state_dict(configs.get("A"), width_multiplier=NARROW, classes=10),
              path)
    last = keras_vgg.vgg("A", weights=path, width_multiplier=NARROW, classes=10)
    keras.config.set_image_data_format("channels_first")
    try:
        first = keras_vgg.vgg("A", weights=path, width_multiplier=NARROW, classes=10)
    finally:
        keras.config.set_image_data_format("channels_last")
    x = images(1, 224)
    np.testing.assert_allclose(forward(first, x.transpose(0, 3, 1, 2)),
                               forward(last, x), rtol=1e-4, atol=1e-6)


def test_the_anatomy_reads_either_layout(layout):
    rows = anatomy.layer_rows(keras_vgg.vgg("A-LRN", width_multiplier=NARROW))
    keras.config.set_image_data_format("channels_last")
    reference = anatomy.layer_rows(keras_vgg.vgg("A-LRN", width_multiplier=NARROW))
    assert rows == reference


# --- LRN against TensorFlow's and PyTorch's -----------------------------------------


def test_lrn_matches_torch_and_tensorflow(layout):
    x = np.random.default_rng(0).normal(0, 50, (2, 5, 6, 16)).astype("float32")
    ours = np.asarray(LocalResponseNormalization()(in_layout(x, layout)))
    if layout == "channels_first":
        ours = ours.transpose(0, 2, 3, 1)
    torch = pytest.importorskip("torch")
    reference = torch.nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0)(
        torch.from_numpy(x).permute(0, 3, 1, 2)).permute(0, 2, 3, 1).numpy()
    np.testing.assert_allclose(ours, reference, rtol=1e-5)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        np.testing.assert_allclose(ours, tf.nn.local_response_normalization(
            x, depth_radius=2, bias=2.0, alpha=1e-4 / 5, beta=0.75).numpy(), rtol=1e-5)


def test_lrn_trains_and_serialises():
    model = keras_vgg.vgg("A-LRN", width_multiplier=NARROW, input_shape=(32, 32, 3), classes=3)
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    x = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    history = model.fit(keras_vgg.preprocess_input(x), np.array([0, 1, 2, 0]), epochs=2,
                        verbose=0)
    assert all(np.isfinite(history.history["loss"]))
    layer = LocalResponseNormalization.from_config(model.get_layer("block1_lrn").get_config())
    assert (layer.size, layer.alpha, layer.beta, layer.k) == (5, 1e-4, 0.75, 2.0)


# --- An exact drop-in for keras.applications ----------------------------------------


def layer_list(model):
    return [(type(layer).__name__, layer.name) for layer in model.layers]


@pytest.mark.full_size
@pytest.mark.parametrize("ours, theirs", [(keras_vgg.VGG16, keras.applications.VGG16),
                                          (keras_vgg.VGG19, keras.applications.VGG19)])
@pytest.mark.parametrize("options", [{}, {"include_top": False},
                                     {"include_top": False, "pooling": "avg"},
                                     {"include_top": False, "pooling": "max"}])
def test_the_named_builders_build_keras_applications_graph(ours, theirs, options, layout):
    keras.backend.clear_session()  # the same automatic names (input_layer, global_*)
    reference = theirs(weights=None, **options)
    keras.backend.clear_session()
    model = ours(weights=None, **options)
    assert layer_list(model) == layer_list(reference)
    assert [tuple(w.shape) for w in model.weights] == [tuple(w.shape) for w in reference.weights]
    assert model.output_shape == reference.output_shape


def test_the_papers_dropout_is_where_the_readme_says():
    names = {layer.name for layer in keras_vgg.vgg("D", width_multiplier=NARROW).layers}
    assert {"fc1_dropout", "fc2_dropout"} <= names  # vgg(config): the paper's 0.5
    plain = keras_vgg.VGG16(weights=None, width_multiplier=NARROW)
    assert not [layer for layer in plain.layers if isinstance(layer, keras.layers.Dropout)]
    paper = keras_vgg.VGG16(weights=None, width_multiplier=NARROW, dropout=0.5)
    assert [layer.rate for layer in paper.layers
            if isinstance(layer, keras.layers.Dropout)] == [0.5, 0.5]


# --- Without TensorFlow -------------------------------------------------------------


@pytest.mark.parametrize("backend", ["jax", "torch"])
@pytest.mark.slow
@pytest.mark.without_tensorflow
def test_the_models_need_no_tensorflow(backend, tmp_path):
    """With TensorFlow made unimportable: the model code builds, trains, loads weights,
    runs dense evaluation and the anatomy; the TensorFlow parts say what to install."""
    pytest.importorskip(backend)
    script = f"""
import sys
sys.modules["tensorflow"] = None  # as if it were not installed
import numpy as np
import keras
import keras_vgg
from keras_vgg import anatomy, dense
model = keras_vgg.vgg("A-LRN", width_multiplier=1 / 16, input_shape=(32, 32, 3), classes=4)
x = keras_vgg.preprocess_input(np.full((2, 32, 32, 3), 100, "float32"))
model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
model.fit(x, np.array([0, 1]), epochs=1, verbose=0)
model.save_weights({str(tmp_path / "a.weights.h5")!r})
keras_vgg.load_weights(model, {str(tmp_path / "a.weights.h5")!r})
scores = dense.fully_convolutional(model)(np.zeros((1, 64, 64, 3), "float32"))
print(keras.backend.backend(), tuple(scores["score_map"].shape), len(anatomy.layer_rows(model)))
try:
    import keras_vgg.data
except ImportError as error:
    print(error)
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=300, check=False, cwd=str(ROOT),
                            env={**os.environ, "KERAS_BACKEND": backend})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"{backend} (1, 2, 2, 4) 20"
    assert names(lines[1], "needs TensorFlow", "pip install"), lines

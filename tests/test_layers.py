import keras
import numpy as np
import pytest

from keras_vgg.layers import LocalResponseNormalization


def lrn_reference(x, size=5, alpha=1e-4, beta=0.75, k=2.0):
    """AlexNet/Caffe LRN over the last axis, written out with loops."""
    channels = x.shape[-1]
    out = np.empty_like(x)
    for c in range(channels):
        low, high = max(0, c - size // 2), min(channels, c + size // 2 + 1)
        square_sum = np.sum(x[..., low:high] ** 2, axis=-1)
        out[..., c] = x[..., c] / (k + alpha / size * square_sum) ** beta
    return out


@pytest.mark.parametrize("size, alpha, beta, k", [(5, 1e-4, 0.75, 2.0), (3, 0.5, 0.5, 1.0)])
def test_lrn_matches_the_formula(size, alpha, beta, k):
    x = np.random.default_rng(0).normal(0, 30, (2, 4, 5, 9)).astype("float32")
    layer = LocalResponseNormalization(size=size, alpha=alpha, beta=beta, k=k)
    np.testing.assert_allclose(
        np.asarray(layer(x)), lrn_reference(x, size, alpha, beta, k), rtol=1e-5
    )


def test_lrn_is_caffe_and_torch_local_response_norm():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(1).normal(0, 30, (2, 6, 7, 16)).astype("float32")
    reference = torch.nn.LocalResponseNorm(size=5, alpha=1e-4, beta=0.75, k=2.0)(
        torch.from_numpy(x).permute(0, 3, 1, 2)
    ).permute(0, 2, 3, 1)
    np.testing.assert_allclose(
        np.asarray(LocalResponseNormalization()(x)), reference.numpy(), rtol=1e-5, atol=1e-6
    )


@pytest.mark.parametrize("size, alpha, beta, k", [(5, 1e-4, 0.75, 2.0), (3, 0.5, 0.5, 1.0)])
def test_lrn_is_tf_nn_local_response_normalization(size, alpha, beta, k):
    tf = pytest.importorskip("tensorflow")
    x = np.random.default_rng(2).normal(0, 30, (2, 6, 7, 16)).astype("float32")
    reference = tf.nn.local_response_normalization(
        x, depth_radius=size // 2, bias=k, alpha=alpha / size, beta=beta)
    layer = LocalResponseNormalization(size=size, alpha=alpha, beta=beta, k=k)
    np.testing.assert_allclose(np.asarray(layer(x)), reference.numpy(), rtol=1e-5, atol=1e-6)


def test_lrn_serializes():
    layer = LocalResponseNormalization(size=3, alpha=0.1, name="lrn")
    restored = keras.layers.deserialize(keras.layers.serialize(layer))
    assert isinstance(restored, LocalResponseNormalization)
    assert (restored.size, restored.alpha, restored.beta, restored.k) == (3, 0.1, 0.75, 2.0)


def test_lrn_rejects_even_sizes():
    with pytest.raises(ValueError, match="odd"):
        LocalResponseNormalization(size=4)

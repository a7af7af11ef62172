import math
import os
import textwrap

import keras
import numpy as np
import pytest
from conftest import NARROW, run_python

import keras_vgg
from keras_vgg import training, weights


def tiny_model(**kwargs):
    return keras_vgg.vgg("A", width_multiplier=NARROW, input_shape=(32, 32, 3), classes=4,
                         dropout=0.0, **kwargs)


def random_batches(count=16, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.normal(0, 50, (count, 32, 32, 3)).astype("float32"),
            rng.integers(0, 4, count).astype("int32"))


def test_weight_decay_is_caffes_gradient_plus_wd_times_w():
    """One SGD step without momentum: w <- w - lr * (dL/dw + wd * w)."""
    x, y = random_batches(8)
    plain = tiny_model()
    decayed = tiny_model(kernel_regularizer=training.l2_for_weight_decay(5e-4))
    decayed.set_weights(plain.get_weights())
    for model in (plain, decayed):
        training.compile_for_training(model, learning_rate=0.1, momentum=0.0)
    before = decayed.get_layer("fc1").kernel.numpy()
    plain.train_on_batch(x, y)
    decayed.train_on_batch(x, y)
    difference = decayed.get_layer("fc1").kernel.numpy() - plain.get_layer("fc1").kernel.numpy()
    expected = -0.1 * 5e-4 * before  # about 5e-6 for |w| ~ 0.1
    np.testing.assert_allclose(difference, expected, rtol=0.01, atol=5e-8)


def test_no_weight_decay_means_no_regularizer():
    assert training.l2_for_weight_decay(0.0) is None


def test_schedule_divides_by_ten_three_times_then_stops(tmp_path):
    x, y = random_batches(16)
    model = tiny_model()
    # a rate too small to learn anything: validation accuracy never improves
    training.compile_for_training(model, learning_rate=1e-9, momentum=0.0)
    callbacks = training.callbacks(str(tmp_path), global_batch_size=16, patience=1)
    model.fit(x, y, validation_data=(x[:8], y[:8]), epochs=40, batch_size=16,
              callbacks=callbacks, verbose=0)
    history = model.history.history
    rates = [round(math.log10(rate)) for rate in history["learning_rate"]]
    # epoch 1 sets the best; epochs 2, 3, 4 each plateau and drop; epoch 5 stops
    assert rates == [-9, -9, -10, -11, -12]
    assert round(math.log10(float(model.optimizer.learning_rate))) == -12
    assert os.path.exists(tmp_path / "history.csv")
    assert all(rate > 0 for rate in history["images_per_second"])


class BlowUpAtEpoch(keras.callbacks.Callback):
    """Sets the output kernel to inf at the start of `epoch`, as diverging training does."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch
        self.good = None

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            self.good = [w.copy() for w in self.model.get_weights()]
            kernel = self.model.get_layer("predictions").kernel
            kernel.assign(np.full(kernel.shape, np.inf, "float32"))


def test_nan_loss_stops_and_keeps_the_last_good_epoch(tmp_path):
    x, y = random_batches(32)
    model = tiny_model()
    training.compile_for_training(model, learning_rate=1e-3, momentum=0.9)
    blow_up = BlowUpAtEpoch(1)
    callbacks = training.callbacks(str(tmp_path), global_batch_size=8) + [blow_up]
    with pytest.raises(training.LossDiverged, match="the loss became nan at step 0: stopped"):
        model.fit(x, y, epochs=5, batch_size=8, callbacks=callbacks, verbose=0)
    last_good = tiny_model()
    weights.load_weights(last_good, tmp_path / "last_good.weights.h5")
    for saved, expected in zip(last_good.get_weights(), blow_up.good, strict=True):
        np.testing.assert_array_equal(saved, expected)
    # the run ended by raising: BackupAndRestore kept epoch 1's checkpoint for a rerun
    metadata = (tmp_path / "backup" / "training_metadata.json").read_text()
    assert '"epoch": 1' in metadata


def test_warm_start_copies_as_first_four_convs_and_the_head(tmp_path):
    a = keras_vgg.vgg("A", width_multiplier=NARROW, input_shape=(32, 32, 3), classes=4)
    path = tmp_path / "a.weights.h5"
    a.save_weights(path)
    d = keras_vgg.vgg("D", width_multiplier=NARROW, input_shape=(32, 32, 3), classes=4)
    untouched = d.get_layer("block1_conv2").kernel.numpy()
    copied = weights.warm_start_from_config_a(d, path)
    assert copied == ["block1_conv1", "block2_conv1", "block3_conv1", "block3_conv2",
                      "fc1", "fc2", "predictions"]
    for name in copied:
        for ours, theirs in zip(d.get_layer(name).get_weights(), a.get_layer(name).get_weights(),
                                strict=True):
            np.testing.assert_array_equal(ours, theirs)
    np.testing.assert_array_equal(d.get_layer("block1_conv2").kernel.numpy(), untouched)


def test_warm_start_from_another_architecture_is_refused(tmp_path):
    b = keras_vgg.vgg("B", width_multiplier=NARROW, input_shape=(32, 32, 3), classes=4)
    b.save_weights(tmp_path / "b.weights.h5")
    d = keras_vgg.vgg("D", width_multiplier=NARROW, input_shape=(32, 32, 3), classes=4)
    with pytest.raises(ValueError, match=r"b.weights.h5: not a config-A checkpoint.*block1_conv2"):
        weights.warm_start_from_config_a(d, tmp_path / "b.weights.h5")
    a = keras_vgg.vgg("A", width_multiplier=2 * NARROW, input_shape=(32, 32, 3), classes=4)
    a.save_weights(tmp_path / "wide_a.weights.h5")
    with pytest.raises(ValueError, match=r"wide_a.weights.h5: layer 'block1_conv1' expects"):
        weights.warm_start_from_config_a(d, tmp_path / "wide_a.weights.h5")


def test_one_and_four_replicas_reach_the_same_weights():
    """The same steps on 1 and on 4 replicas: the batch is split and gradients averaged."""
    script = textwrap.dedent("""
        import numpy as np, tensorflow as tf, keras, keras_vgg
        from keras_vgg import training
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 4)
        rng = np.random.default_rng(0)
        x = rng.normal(0, 50, (64, 32, 32, 3)).astype("float32")
        y = rng.integers(0, 4, 64).astype("int32")
        def run(strategy):
            keras.utils.set_random_seed(1)
            global initial
            with strategy.scope():
                model = keras_vgg.vgg("A", width_multiplier=1 / 16, input_shape=(32, 32, 3),
                                      classes=4, dropout=0.0, kernel_regularizer=
                                      training.l2_for_weight_decay(5e-4))
                training.compile_for_training(model, learning_rate=0.01)
            initial = model.get_weights()
            data = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
            model.fit(data, epochs=2, verbose=0)
            return model.get_weights()
        one = run(tf.distribute.get_strategy())
        four = run(tf.distribute.MirroredStrategy([f"/cpu:{i}" for i in range(4)]))
        print("MAXDIFF", max(float(np.abs(a - b).max()) for a, b in zip(one, four)))
        print("MOVED", max(float(np.abs(a - b).max()) for a, b in zip(one, initial)))
    """)
    result = run_python(script)
    assert result.returncode == 0, result.stderr[-3000:]
    values = dict(line.split() for line in result.stdout.splitlines()
                  if line.startswith(("MAXDIFF", "MOVED")))
    assert float(values["MAXDIFF"]) < 1e-4
    assert float(values["MOVED"]) > 1e-3  # training did change the weights


def test_mixed_bfloat16_trains_with_float32_variables():
    import keras

    x, y = random_batches(8)
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = tiny_model()
        training.compile_for_training(model)
        loss = model.train_on_batch(x, y)
        assert model.get_layer("block1_conv1").compute_dtype == "bfloat16"
        assert model.get_layer("block1_conv1").kernel.dtype == "float32"
        assert model.output.dtype == "float32"
        assert np.all(np.isfinite(loss))
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_outside_a_cluster_nothing_multi_worker_applies(monkeypatch, tmp_path):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    strategy = training.strategy_from_environment()
    assert not training.is_multi_worker(strategy)
    assert training.worker_dir(str(tmp_path), strategy) == str(tmp_path)
    model = keras_vgg.vgg("A", width_multiplier=NARROW, input_shape=(32, 32, 3), classes=3)
    steps = model.train_step, model.test_step
    training.fit_under_multi_worker(model, strategy)
    assert (model.train_step, model.test_step) == steps
    assert not any(isinstance(callback, training.WorkersResumeTogether)
                   for callback in training.callbacks(str(tmp_path), global_batch_size=4,
                                                      strategy=strategy))


@pytest.mark.parametrize("tf_config, message", [
    ('{"cluster": ', "TF_CONFIG is not valid JSON"),
    ("[]", "TF_CONFIG must be"),
    ('{"cluster": ["localhost:1"]}', "TF_CONFIG must be"),
    ('{"cluster": {"worker": "localhost:1"}}', "TF_CONFIG must be"),
    ('{"cluster": {"worker": ["localhost:1", "localhost:2"]}}', "task None is not one of"),
    ('{"cluster": {"worker": ["localhost:1", "localhost:2"]}, '
     '"task": {"type": "worker", "index": 2}}', "is not one of its cluster"),
])
def test_a_malformed_tf_config_is_named(monkeypatch, tf_config, message):
    monkeypatch.setenv("TF_CONFIG", tf_config)
    with pytest.raises(ValueError, match=message):
        training.strategy_from_environment()

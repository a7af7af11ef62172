import csv
import dataclasses
from pathlib import Path

import numpy as np
import pytest
from conftest import NARROW, REPLICA_DEVICES, forward, names, tiny_run_config
from image_files import imagenet_folder, write

import keras_vgg
from keras_vgg import callbacks, checkpoints, runs, tasks, training, weights


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
    decayed = tiny_model(kernel_regularizer=tasks.l2_for_weight_decay(5e-4))
    decayed.set_weights(plain.get_weights())
    for model in (plain, decayed):
        tasks.compile_for_training(model, learning_rate=0.1, momentum=0.0)
    before = decayed.get_layer("fc1").kernel.numpy()
    plain.train_on_batch(x, y)
    decayed.train_on_batch(x, y)
    difference = decayed.get_layer("fc1").kernel.numpy() - plain.get_layer("fc1").kernel.numpy()
    expected = -0.1 * 5e-4 * before  # about 5e-6 for |w| ~ 0.1
    np.testing.assert_allclose(difference, expected, rtol=0.01, atol=5e-8)


def test_no_weight_decay_means_no_regularizer():
    assert tasks.l2_for_weight_decay(0.0) is None


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


def test_warm_start_of_the_5x5_control_net_copies_the_head_only(tmp_path):
    a = keras_vgg.vgg("A", width_multiplier=NARROW, input_shape=(32, 32, 3), classes=4)
    a.save_weights(tmp_path / "a.weights.h5")
    control = keras_vgg.vgg("B-5x5", width_multiplier=NARROW, input_shape=(32, 32, 3),
                            classes=4)
    first = control.get_layer("block1_conv1").kernel.numpy()
    copied = weights.warm_start_from_config_a(control, tmp_path / "a.weights.h5")
    assert copied == ["fc1", "fc2", "predictions"]
    np.testing.assert_array_equal(control.get_layer("fc1").kernel.numpy(),
                                  a.get_layer("fc1").kernel.numpy())
    np.testing.assert_array_equal(control.get_layer("block1_conv1").kernel.numpy(), first)


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


@pytest.mark.slow
def test_one_and_four_replicas_reach_the_same_weights():
    """The same steps on 1 and on 4 replicas: the batch is split and gradients averaged."""
    import keras
    import tensorflow as tf

    images, labels = random_batches(64)

    def trained(strategy):
        keras.utils.set_random_seed(1)
        with strategy.scope():
            model = tiny_model(kernel_regularizer=tasks.l2_for_weight_decay(5e-4))
            tasks.compile_for_training(model, learning_rate=0.01)
        initial = model.get_weights()
        model.fit(tf.data.Dataset.from_tensor_slices((images, labels)).batch(16), epochs=2,
                  shuffle=False, verbose=0)
        return initial, model.get_weights()

    initial, one = trained(tf.distribute.get_strategy())
    _, four = trained(tf.distribute.MirroredStrategy(REPLICA_DEVICES))
    assert max(np.abs(a - b).max() for a, b in zip(one, four, strict=True)) < 1e-4
    # Training did change the weights.
    assert max(np.abs(a - b).max() for a, b in zip(one, initial, strict=True)) > 1e-3


def test_mixed_bfloat16_trains_with_float32_variables():
    import keras

    x, y = random_batches(8)
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = tiny_model()
        tasks.compile_for_training(model, learning_rate=0.01)
        loss = model.train_on_batch(x, y)
        assert model.get_layer("block1_conv1").compute_dtype == "bfloat16"
        assert model.get_layer("block1_conv1").kernel.dtype == "float32"
        assert model.output.dtype == "float32"
        assert np.all(np.isfinite(loss))
    finally:
        keras.mixed_precision.set_global_policy("float32")


def history(model_dir):
    with open(model_dir / "history.csv") as file:
        return list(csv.DictReader(file))


@pytest.mark.slow
def test_a_rate_too_high_stops_with_what_to_change(demo_images, tmp_path):
    config = tiny_run_config(tmp_path / "run", demo_images, epochs=3, learning_rate=50.0)
    with pytest.raises(callbacks.LossDiverged) as error:
        training.train(config, verbose=0)
    message = str(error.value)
    assert names(message, "epoch 1", "rate 50", "--learning_rate=5 or lower", "0.00015625",
                 "0.01 at batch 256, x 4/256", "new --model_dir"), message
    assert not (tmp_path / "run" / "final.weights.h5").exists()


def test_divergence_advice_names_the_initialisation_where_it_is_the_cause():
    config = tiny_run_config("/tmp/run", "/images", config="D", init="gaussian")
    run = runs.Run.of(config, ["a", "b"])
    advice = training.divergence_advice(run, "growth")
    assert "--learning_rate=1.56e-05 or lower" in advice
    assert "--init=glorot" in advice
    assert "leave --learning_rate unset" not in advice
    start = training.divergence_advice(run, "start")  # before any update: not the rate
    assert names(start, "--init=gaussian", "--preprocessing=caffe", "--init=glorot",
                 "new --model_dir"), start
    assert "learning_rate" not in start


def test_the_run_directory_describes_the_run(tiny_run):
    assert tiny_run.config.config == "A" and tiny_run.num_classes == 10
    assert tiny_run.class_ids[:2] == ("checkerboard", "circle")
    model = tiny_run.build_model()
    assert model.input_shape == (None, 32, 32, 3) and model.output_shape == (None, 10)
    for name in ("run.json", "final.weights.h5", "history.csv"):
        assert (Path(tiny_run.directory) / name).exists(), name
    assert checkpoints.latest(tiny_run.directory) is None  # removed when the run ends


def test_the_final_weights_are_the_net_s_without_the_optimizer_s_state(tiny_run):
    import h5py

    with h5py.File(Path(tiny_run.directory) / "final.weights.h5") as file:
        assert "layers" in file and "optimizer" not in file
    # Keras' own load_weights reads the file into the run's net, as keras_vgg's loader does.
    by_keras = tiny_run.build_model(weights=False)
    by_keras.load_weights(tiny_run.weights_path)
    images = random_batches(2)[0]
    np.testing.assert_array_equal(forward(by_keras, images),
                                  forward(tiny_run.build_model(), images))


def test_a_model_dir_holding_another_run_is_refused(tiny_run, demo_images, tmp_path):
    with pytest.raises(ValueError, match="holds a finished run"):
        training.train(tiny_run.config, verbose=0)
    other = tiny_run_config(tmp_path, demo_images)
    runs.Run.of(other, tiny_run.class_ids).save()
    changed = tiny_run_config(tmp_path, demo_images, batch_size=8, learning_rate=0.1,
                              epochs=5)  # more epochs alone would resume
    with pytest.raises(ValueError, match=r"holds a run with other settings \(batch_size 4 -> "
                                         r"8, learning_rate None -> 0.1\)"):
        training.train(changed, verbose=0)


def test_training_data_smaller_than_a_batch_is_refused(demo_images, tmp_path):
    config = tiny_run_config(tmp_path / "run", demo_images, batch_size=256)
    with pytest.raises(ValueError, match=r"holds 20 images, fewer than one batch "
                                         r"\(batch_size=256\): give batch_size=20 or less"):
        training.train(config, verbose=0)
    assert not (tmp_path / "run").exists()


def test_validation_data_with_other_classes_is_refused(demo_images, tmp_path):
    imagenet_folder(str(tmp_path / "val"), ["circle", "square"], per_class=1)
    config = tiny_run_config(tmp_path / "run", demo_images, val_data=f"folder:{tmp_path}/val")
    with pytest.raises(ValueError, match=r"the validation data .* labels 2 classes where 10 are "
                                         r"expected \(missing \['checkerboard'"):
        training.train(config, verbose=0)
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_warm_start_and_init_from_take_run_directories(tiny_run, demo_images, tmp_path,
                                                      capsys):
    deeper = tiny_run_config(tmp_path / "d", demo_images, config="D",
                             warm_start=tiny_run.directory, steps_per_epoch=1)
    training.train(deeper, verbose=0)
    assert (f"Warm start from {tiny_run.directory}: copied block1_conv1, block2_conv1, "
            "block3_conv1, block3_conv2, fc1, fc2, predictions.") in capsys.readouterr().out
    tuned = tiny_run_config(tmp_path / "tuned", demo_images, init_from=tiny_run.directory,
                            steps_per_epoch=1)
    training.train(tuned, verbose=0)
    output = capsys.readouterr().out
    assert f"Initialised from {tiny_run.directory}: loaded 11 layers (" in output
    assert names(output, "learning rate 1.5625e-05", "fine-tuning rate",
                 "0.001 at batch 256, x 4/256"), output
    with pytest.raises(ValueError, match="init_from: /no/run: no such weights file, preset or "
                                         "run directory"):
        tiny_run_config(tmp_path / "x", demo_images, init_from="/no/run")


@pytest.mark.slow
def test_training_data_that_yields_no_image_stops_the_run(demo_images, tmp_path):
    from image_files import broken_files

    for name in ("circle", "square"):
        write(str(tmp_path / "train" / name), broken_files())
    imagenet_folder(str(tmp_path / "val"), ["circle", "square"], per_class=1)
    config = tiny_run_config(tmp_path / "run", demo_images, data=f"folder:{tmp_path}/train",
                             val_data=f"folder:{tmp_path}/val")
    with pytest.raises(callbacks.NoData, match=r"epoch 1 had no training images: every file "
                                               r"of 'folder:.*/train' was skipped"):
        training.train(config, verbose=0)
    assert not (tmp_path / "run" / "final.weights.h5").exists()


@pytest.mark.slow
def test_validation_data_that_yields_no_image_stops_the_run(demo_images, tmp_path):
    from image_files import broken_files

    for name in sorted(p.name for p in (Path(demo_images) / "train").iterdir()):
        write(str(tmp_path / "val" / name), {"empty.JPEG": broken_files()["empty.JPEG"]})
    config = tiny_run_config(tmp_path / "run", demo_images, val_data=f"folder:{tmp_path}/val")
    with pytest.raises(callbacks.NoData, match="epoch 1 had no validation images"):
        training.train(config, verbose=0)
    assert not (tmp_path / "run" / "final.weights.h5").exists()


@pytest.mark.slow
def test_a_small_validation_set_is_decoded_once_per_run(demo_images, tmp_path, capfd):
    """Kept in memory after the first epoch: a broken file among the validation images is
    named once, not at each epoch and again at the end, and every epoch is validated."""
    import shutil

    from image_files import broken_files

    shutil.copytree(Path(demo_images) / "val", tmp_path / "val")
    write(str(tmp_path / "val" / "circle"), {"empty.JPEG": broken_files()["empty.JPEG"]})
    config = tiny_run_config(tmp_path / "run", demo_images, val_data=f"folder:{tmp_path}/val",
                             epochs=3)
    result = training.train(config, verbose=0)
    assert capfd.readouterr().err.count("empty.JPEG: unreadable or undecodable file") == 1
    with open(tmp_path / "run" / "history.csv") as file:
        assert len([row["val_accuracy"] for row in csv.DictReader(file)]) == 3
    assert result.val_images == 10
    # The final validation is the final weights' on the centre crops, computed here anew
    # (Keras' loss adds the weight decay's).
    from keras_vgg import data

    run = runs.load(tmp_path / "run")
    model = run.build_model()
    crops, labels = zip(*data.eval_dataset(config.val_data, test_scale=run.test_scale,
                                           crop_size=config.crop_size), strict=True)
    labels = np.concatenate(labels)
    probabilities = np.concatenate([forward(model, batch) for batch in crops])
    assert result.val_accuracy == np.mean(probabilities.argmax(axis=1) == labels)
    weight_decay = sum(config.weight_decay / 2 * np.sum(np.square(layer.kernel))
                       for layer in model.layers if hasattr(layer, "kernel"))
    np.testing.assert_allclose(result.val_loss, weight_decay - np.mean(np.log(
        probabilities[np.arange(len(labels)), labels])), rtol=1e-5)


@pytest.mark.parametrize("model_dir, overrides, message", [
    ("/tmp/unused", {"data": "folder:/no/such/folder"},
     "image folder '/no/such/folder' does not exist"),
    ("/dev/null/run", {}, "model_dir '/dev/null/run' cannot be created"),
])
def test_data_and_model_dir_that_cannot_serve_are_refused(demo_images, model_dir, overrides,
                                                          message):
    config = tiny_run_config(model_dir, demo_images, **overrides)
    with pytest.raises(training.RunError, match=message):
        training.train(config, verbose=0)


@pytest.mark.slow
def test_a_failed_checkpoint_write_keeps_the_last_one_and_the_run_resumes(
        demo_images, tmp_path, monkeypatch):
    """The disk fills during epoch 2's checkpoint: the write fails half-way. The run stops
    with what to do, epoch 1's files stay loadable, and the same call resumes."""
    import errno

    import keras

    from keras_vgg import files

    config = tiny_run_config(tmp_path / "run", demo_images, epochs=3)
    save = keras.Model.save_weights
    calls = []

    def full_disk(model, path, *args, **kwargs):
        calls.append(path)
        if len(calls) == 2:  # epoch 2's checkpoint
            with open(path, "wb") as file:
                file.write(b"\x89HDF\r\n\x1a\n half a file")
            raise OSError(errno.ENOSPC, "No space left on device")
        return save(model, path, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "save_weights", full_disk)
    with pytest.raises(files.WriteFailed, match=r"cannot write .*epoch-2 \(the disk is full\)\. "
                                                r"The files written before are intact: free "
                                                r"some space"):
        training.train(config, verbose=0)
    run_dir = tmp_path / "run"
    assert not [p for p in run_dir.rglob("*") if "partial" in p.name]
    assert checkpoints.saved_epoch(str(run_dir)) == 1
    weights.load_weights(runs.load(run_dir).build_model(weights=False),
                         Path(checkpoints.latest(str(run_dir))) / checkpoints.WEIGHTS_FILE)
    monkeypatch.setattr(keras.Model, "save_weights", save)
    result = training.train(config, verbose=0)
    assert result.epochs == 3
    assert [row["epoch"] for row in history(run_dir)] == ["0", "1", "2"]


def test_a_run_stopped_after_its_last_epoch_is_validated_when_resumed(
        demo_images, tmp_path, monkeypatch):
    """Its final weights failed to write: the same call resumes past the last epoch, trains
    no more, and validates the net it restored."""
    import errno
    import os

    import keras

    from keras_vgg import files

    config = tiny_run_config(tmp_path / "run", demo_images, epochs=1)
    save = keras.Model.save_weights

    def full_disk(model, path, *args, **kwargs):
        if not os.path.basename(path).startswith(".final."):  # the final weights' partial
            return save(model, path, *args, **kwargs)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(keras.Model, "save_weights", full_disk)
    with pytest.raises(files.WriteFailed):
        training.train(config, verbose=0)
    monkeypatch.setattr(keras.Model, "save_weights", save)
    result = training.train(config, verbose=0)
    assert (result.epochs, result.val_images) == (1, 10)
    assert 0 <= result.val_accuracy <= 1 and np.isfinite(result.val_loss)
    assert len(history(tmp_path / "run")) == 1


# --- Fine-tuning onto other classes ---------------------------------------------------------


def new_shapes(root, classes=3):
    """Three shapes the demo's nets never see: 2 training and 1 held-out image each."""
    import demo_data

    demo_data.write(str(root), train_per_class=2, val_per_class=1,
                    classes=demo_data.NEW_CLASSES[:classes])
    return f"folder:{root}/train", f"folder:{root}/val"


def loaded_as(model, source_model, layers):
    for name in layers:
        for mine, theirs in zip(model.get_layer(name).get_weights(),
                                source_model.get_layer(name).get_weights(), strict=True):
            np.testing.assert_array_equal(mine, theirs)


def test_fine_tuning_a_run_onto_other_classes_loads_all_but_the_classifier(tiny_run,
                                                                           tmp_path):
    data, val_data = new_shapes(tmp_path / "shapes")
    config = runs.RunConfig(model_dir=str(tmp_path / "run"), init_from=tiny_run.directory,
                            data=data, val_data=val_data)
    # The network, width, crop, scale and preprocessing are the run's, unsaid.
    assert (config.config, config.width_multiplier, config.crop_size, config.scale) == (
        "A", NARROW, 32, (40, 48))
    run = runs.Run.of(dataclasses.replace(config, batch_size=1), ["a", "b", "c"])
    model = tasks.classifier(run)
    new_layers, line = training.initialise_from(model, config)
    assert new_layers == ("predictions",)
    trunk = [layer.name for layer in model.layers if layer.weights][:-1]
    assert line == (f"Initialised from {tiny_run.directory}: loaded 10 layers "
                    f"({', '.join(trunk)}); new: predictions (initialised glorot; 3 classes).")
    loaded_as(model, tiny_run.build_model(), trunk)
    assert model.get_layer("predictions").units == 3


def test_fine_tuning_from_a_keras_hub_backbone_makes_the_head_new(tmp_path):
    source = keras_vgg.vgg("A", width_multiplier=NARROW)
    keras_vgg.kerashub.save_preset(source, tmp_path / "preset")
    data, val_data = new_shapes(tmp_path / "shapes")
    config = runs.RunConfig(model_dir=str(tmp_path / "run"), init_from=str(tmp_path / "preset"),
                            data=data, val_data=val_data, crop_size=32, scale=40)
    assert (config.config, config.width_multiplier) == ("A", NARROW)
    model = tasks.classifier(runs.Run.of(dataclasses.replace(config, batch_size=1),
                                         ["a", "b", "c"]))
    new_layers, line = training.initialise_from(model, config)
    assert new_layers == ("fc1", "fc2", "predictions")
    assert line.endswith("; new: fc1, fc2, predictions (initialised glorot; 3 classes).")
    loaded_as(model, source, [layer.name for layer in model.layers
                              if layer.name.startswith("block") and layer.weights])


def test_fine_tuning_from_a_torchvision_checkpoint_onto_other_classes(tmp_path):
    from safetensors.numpy import save_file
    from test_weights import torchvision_state_dict

    state = torchvision_state_dict(keras_vgg.configs.get("A"), width_multiplier=NARROW,
                                   classes=1000)
    save_file(state, str(tmp_path / "vgg11.safetensors"))
    data, val_data = new_shapes(tmp_path / "shapes")
    config = runs.RunConfig(model_dir=str(tmp_path / "run"), config="vgg11",
                            width_multiplier=NARROW, init_from=str(tmp_path / "vgg11.safetensors"),
                            data=data, val_data=val_data)
    assert (config.config, config.preprocessing, config.crop_size) == ("A", "torch", 224)
    model = tasks.classifier(runs.Run.of(dataclasses.replace(config, batch_size=1),
                                         ["a", "b", "c"]))
    new_layers, line = training.initialise_from(model, config)
    assert new_layers == ("predictions",)
    assert "loaded 10 layers" in line and line.endswith("new: predictions (initialised "
                                                        "glorot; 3 classes).")
    np.testing.assert_array_equal(model.get_layer("fc2").get_weights()[1],
                                  state["classifier.3.bias"])


def test_data_with_one_class_is_refused(tmp_path):
    data, val_data = new_shapes(tmp_path / "shapes", classes=1)
    config = tiny_run_config(tmp_path / "run", tmp_path, data=data, val_data=val_data)
    with pytest.raises(training.RunError, match=r"has one class \('crescent'\): a classifier "
                                                "learns to tell classes apart"):
        training.train(config, verbose=0)


@pytest.mark.slow
def test_the_default_batch_is_set_from_the_training_data(demo_images, tmp_path, capsys):
    config = tiny_run_config(tmp_path / "run", demo_images, batch_size=None, epochs=1,
                             steps_per_epoch=2)
    training.train(config, verbose=0)
    # 20 images: batch 1 gives 20 steps, the 32 of MIN_STEPS_PER_EPOCH being out of reach
    assert runs.load(tmp_path / "run").config.batch_size == 1
    output = capsys.readouterr().out
    assert names(output, "batch 1", "learning rate 3.90625e-05", "0.01 at batch 256, x 1/256"), \
        output

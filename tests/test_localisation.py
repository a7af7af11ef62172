"""Localisation (Appendix A): annotations, boxes through the pipeline's geometry, the
box net and its loss, both test protocols, and training from a classification run."""

import dataclasses
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import NARROW, tiny_run_config
from image_files import encode, photo, write

import keras_vgg
from keras_vgg import (
    annotations,
    boxes,
    localisation,
    localisation_data,
    localisation_eval,
    nets,
    runs,
    serving,
    sources,
    training,
)

PAINT = np.array([255, 0, 255], np.uint8)  # a colour no photograph here has


def painted(name, box):
    """A photograph with the hand-placed box `(x_min, y_min, x_max, y_max)` painted solid,
    as lossless PNG bytes: its pixels show where the box went after any geometry."""
    image = photo(name).copy()
    x0, y0, x1, y1 = box
    image[y0:y1, x0:x1] = PAINT
    return encode(image, "PNG")


def painted_extent(image, threshold=60):
    """The window-relative corners of the painted pixels in an output image, or None."""
    distance = np.abs(np.asarray(image, float) - PAINT).sum(axis=-1)
    rows, cols = np.nonzero(distance < threshold)
    if not len(rows):
        return None
    height, width = distance.shape
    return np.array([cols.min() / width, rows.min() / height, (cols.max() + 1) / width,
                     (rows.max() + 1) / height])


def record(contents, box, seed=(1, 2)):
    return {"image": tf.constant(contents), "seed": tf.constant(seed, tf.int64),
            "boxes": tf.constant([box, [0, 0, 0, 0]], tf.float32),
            "box_count": tf.constant(1), "label": tf.constant(2)}


@pytest.mark.parametrize("name, box", [("chelsea", (120, 40, 260, 150)),
                                       ("astronaut", (300, 330, 420, 500))])
def test_boxes_follow_rescale_crop_and_flip_on_photographs(name, box):
    contents = painted(name, box)
    seen = {"mirrored": 0, "shown": 0, "hidden": 0}
    for seed in range(24):
        out = localisation_data.box_train_transform(record(contents, box, (seed, 7)),
                                                scale=(256, 400), crop_size=(224, 224))
        target = out["label"].numpy()
        extent = painted_extent(out["image"].numpy())
        assert target[0] == 2
        if extent is None or min(extent[2] - extent[0], extent[3] - extent[1]) < 0.02:
            seen["hidden"] += 1
            continue
        seen["shown"] += 1
        assert target[5] == 1.0
        np.testing.assert_allclose(np.clip(boxes.to_corners(target[1:5]), 0, 1), extent,
                                   atol=2.5 / 224)
        centre_x = (box[0] + box[2]) / 2 / photo(name).shape[1]
        seen["mirrored"] += (target[1] - 0.5) * (centre_x - 0.5) < 0
    assert seen["shown"] >= 10 and seen["mirrored"] >= 2, seen


def test_a_crop_that_misses_the_object_has_weight_zero():
    contents = painted("astronaut", (0, 0, 20, 20))
    weights = [localisation_data.box_train_transform(record(contents, (0, 0, 20, 20), (seed, 1)),
                                                 scale=(1024, 1024), crop_size=(224, 224)
                                                 )["label"].numpy()[5] for seed in range(12)]
    assert 0.0 in weights and set(weights) <= {0.0, 1.0}


def test_the_centre_crop_window_is_the_one_rescaling_and_cropping_keep():
    box = (100, 120, 330, 280)
    contents = painted("chelsea", box)
    out = localisation_data.centre_transform(record(contents, box), test_scale=256,
                                             crop_size=(224, 224))
    window = out["window"].numpy()
    extent = painted_extent(out["image"].numpy())
    np.testing.assert_allclose(np.clip(boxes.to_corners(out["label"].numpy()[1:5]), 0, 1),
                               extent, atol=2.5 / 224)
    np.testing.assert_allclose(boxes.from_window(extent, window), box, atol=3)


def test_imagenet_annotations_xml_and_loc_csv(tmp_path):
    xml = tmp_path / "n01440764" / "n01440764_18.xml"
    xml.parent.mkdir()
    xml.write_text(
        "<annotation><filename>n01440764_18</filename><size><width>250</width>"
        "<height>200</height></size><object><name>n01440764</name><bndbox><xmin>10</xmin>"
        "<ymin>20</ymin><xmax>100</xmax><ymax>150</ymax></bndbox></object><object><name>"
        "n01440764</name><bndbox><xmin>5</xmin><ymin>6</ymin><xmax>7</xmax><ymax>8</ymax>"
        "</bndbox></object></annotation>")
    assert annotations.read(str(tmp_path)) == {"n01440764_18": [
        ("n01440764", (10.0, 20.0, 100.0, 150.0)), ("n01440764", (5.0, 6.0, 7.0, 8.0))]}
    solution = tmp_path / "LOC_val_solution.csv"
    solution.write_text("ImageId,PredictionString\n"
                        "ILSVRC2012_val_00008726,n02119789 255 142 454 329 n02119789 44 21 "
                        "322 295 \n")
    assert annotations.read(str(solution)) == {"ILSVRC2012_val_00008726": [
        ("n02119789", (255.0, 142.0, 454.0, 329.0)), ("n02119789", (44.0, 21.0, 322.0, 295.0))]}
    solution.write_text("ImageId,PredictionString\nx,n02119789 1 2 3\n")
    with pytest.raises(ValueError, match="expected 'synset x_min y_min x_max y_max' per box"):
        annotations.read(str(solution))
    (tmp_path / "bad.xml").write_text("<annotation><object><name>x</name></object>")
    with pytest.raises(ValueError, match="bad.xml' is not a VOC-style box file"):
        annotations.read_xml(str(tmp_path / "bad.xml"))


def test_a_folder_with_boxes_keeps_annotated_images_and_their_class_boxes(tmp_path, capfd):
    for synset in ("cat", "dog"):
        write(str(tmp_path / "images" / synset),
              {f"{synset}_{i}.JPEG": encode(photo("coffee")[::4, ::4]) for i in range(2)})
    (tmp_path / "boxes.csv").write_text(
        "ImageId,PredictionString\n"
        "cat_0,cat 1 2 30 40 dog 5 5 9 9 cat 3 3 4 4\n"
        "dog_1,dog 0 0 10 10\n")
    opened = sources.open_source(f"folder:{tmp_path / 'images'}?boxes={tmp_path / 'boxes.csv'}")
    assert opened.boxes and opened.num_examples == 2
    assert "2 of 4 images have no box of their class" in capfd.readouterr().err
    got = {os.path.basename(r["id"].numpy().decode()): (
        int(r["label"]), r["boxes"].numpy()[: int(r["box_count"])].tolist())
        for r in opened.dataset}
    assert got == {"cat_0.JPEG": (0, [[1, 2, 30, 40], [3, 3, 4, 4]]),  # not the dog's box
                   "dog_1.JPEG": (1, [[0, 0, 10, 10]])}
    with pytest.raises(ValueError, match="has no boxes: localisation needs"):
        localisation_data.centre_dataset(f"folder:{tmp_path / 'images'}", test_scale=64,
                                         crop_size=32)
    with pytest.raises(ValueError, match="has no boxes: localisation needs"):
        localisation_data.train_dataset(f"folder:{tmp_path / 'images'}", global_batch_size=2)


@pytest.fixture
def classifier():
    return keras_vgg.vgg("A", width_multiplier=NARROW, input_shape=(32, 32, 3), classes=3)


def test_box_nets_replace_the_classifier_and_share_the_rest(classifier):
    for mode, units in (("scr", 4), ("pcr", 12)):
        net = localisation.localisation_model(classifier, mode)
        assert net.output_shape == (None, units) and localisation.mode_of(net)[0] == mode
        assert net.get_layer("fc2") is classifier.get_layer("fc2")
        assert "predictions" not in [layer.name for layer in net.layers]
    with pytest.raises(ValueError, match="box regression must be one of"):
        localisation.localisation_model(classifier, "xyz")


def test_per_class_regression_counts_only_the_true_class_box(capfd):
    targets = np.array([[1, 0.5, 0.5, 0.2, 0.4, 1.0], [2, 0.3, 0.3, 0.1, 0.1, 0.0]], np.float32)
    predicted = np.zeros((2, 12), np.float32)
    predicted[0, 4:8] = [0.6, 0.5, 0.2, 0.2]  # class 1: off by 0.1 and 0.2
    loss = localisation.BoxLoss("pcr")
    per_example = tf.function(loss.call)(targets, predicted).numpy()  # as training runs it
    np.testing.assert_allclose(per_example, [0.5 * (0.1**2 + 0.2**2), 0.0], rtol=1e-5)
    assert "oneDNN" not in capfd.readouterr().err  # TensorFlow's log of int64 indices
    other = predicted.copy()
    other[0, :4] = other[0, 8:] = 9.0  # other classes' boxes: no effect
    np.testing.assert_allclose(loss.call(targets, other).numpy(), per_example)
    accuracy = localisation.BoxAccuracy("pcr")
    accuracy.update_state(targets, predicted)  # IoU 0.5 - not above; the 2nd has weight 0
    assert float(accuracy.result()) == 0.0
    exact = predicted.copy()
    exact[0, 4:8] = targets[0, 1:5]
    accuracy.update_state(targets, exact)
    assert float(accuracy.result()) == 0.5


def test_full_protocol_guesses_merge_positions_and_map_back():
    # A 1x2 map from a 32 px crop: positions at x = 0 and 32 px of the rescaled image, which
    # is twice the original. Both predict the same original box for class 1 (SCR).
    box_map = np.array([[[0.5, 0.5, 0.5, 0.5], [0.0, 0.5, 0.5, 0.5]]], np.float32)
    scores = np.array([[[0.1, 0.9], [0.2, 0.8]]])
    guesses = localisation_eval.image_guesses([box_map], ["scr"], scores, np.array([0.1, 0.9]),
                                              np.array([2.0, 2.0]), 32, k=2)
    assert [label for label, _ in guesses] == [1, 0]
    np.testing.assert_allclose(guesses[0][1], [4, 4, 12, 12])  # (8..24 px) / 2


def test_served_boxes_grow_from_the_best_position():
    # Two positions of a 32 px crop on an image rescaled x2. Position 1's box overlaps
    # position 0's in the second map, not in the first.
    apart = np.array([[[[0.5, 0.5, 0.5, 0.5], [0.0, 0.5, 0.5, 0.5]]]], np.float32)
    close = np.array([[[[0.5, 0.5, 0.5, 0.5], [-0.45, 0.5, 0.5, 0.5]]]], np.float32)
    scores = np.array([[[[0.1, 0.9], [0.2, 0.8]]]], np.float32)
    ids = tf.constant([[1, 0]])
    got = serving.dense_class_boxes(apart, scores, ids, tf.constant([2.0, 2.0]), 32, "scr")
    np.testing.assert_allclose(got.numpy(), [[[4, 4, 12, 12], [12, 4, 20, 12]]])
    got = serving.dense_class_boxes(close, scores, ids, tf.constant([2.0, 2.0]), 32, "scr")
    np.testing.assert_allclose(got.numpy()[0, 0], [4.4, 4, 12.4, 12], rtol=1e-5)


@pytest.fixture
def boxed_images(tmp_path):
    """The demo's image set, 2 training and 1 held-out image per class, with boxes."""
    import demo_data

    demo_data.write(str(tmp_path / "images"), train_per_class=2, val_per_class=1)
    return tmp_path / "images"


def localisation_run_config(model_dir, images, init_from, **overrides):
    return dataclasses.replace(
        tiny_run_config(model_dir, images), task="localisation",
        data=f"folder:{images}/train?boxes={images}/boxes/train",
        val_data=f"folder:{images}/val?boxes={images}/boxes/val", init_from=init_from,
        **overrides)


@pytest.mark.slow
def test_an_interrupted_localisation_run_resumes(tiny_run, boxed_images, tmp_path,
                                                 monkeypatch):
    from keras_vgg import callbacks

    config = localisation_run_config(tmp_path / "loc", boxed_images, tiny_run.directory,
                                     epochs=3)
    schedule_end = callbacks.PaperSchedule.on_epoch_end

    def interrupted(self, epoch, logs=None):
        if epoch == 1:
            raise KeyboardInterrupt
        return schedule_end(self, epoch, logs)

    monkeypatch.setattr(callbacks.PaperSchedule, "on_epoch_end", interrupted)
    with pytest.raises(KeyboardInterrupt):
        training.train(config, verbose=0)
    monkeypatch.setattr(callbacks.PaperSchedule, "on_epoch_end", schedule_end)
    result = training.train(config, verbose=0)
    assert result.epochs == 3
    with open(tmp_path / "loc" / "history.csv") as file:
        assert [line.split(",")[0] for line in file.read().splitlines()[1:]] == ["0", "1", "2"]
    assert runs.load(tmp_path / "loc").build_model().output_shape == (None, 40)


@pytest.mark.slow
def test_localisation_trains_from_a_classification_run_and_is_tested(tiny_run, boxed_images,
                                                                     tmp_path, capfd):
    config = localisation_run_config(tmp_path / "loc", boxed_images, tiny_run.directory)
    assert config.initial_learning_rate() == pytest.approx(1e-3 * 4 / 256)
    result = training.train(config, verbose=0)
    assert "the true class's box at IoU > 0.5" in result.summary()
    run = runs.load(config.model_dir)
    net = run.build_model()
    assert net.output_shape == (None, 4 * 10)
    assert f"Initialised from {tiny_run.directory}: loaded 11 layers (" in (
        capfd.readouterr().out)
    started = tiny_run.build_model()
    centre, details = localisation_eval.centre_crop(net, config.val_data, test_scale=44)
    assert centre.images == 10 and 0 <= centre.top1_error <= 1
    assert len(details) == 10 and details[0][3]  # ground truth carried through
    full, _ = localisation_eval.full([net, net], started, config.val_data, test_scale=64)
    assert full.images == 10 and full.top1_error >= full.top5_error
    path = serving.export_net(nets.Net.of_run(tiny_run), str(tmp_path / "export"),
                              localisation_run=run, warmup=False)
    served = tf.saved_model.load(path)
    pixels = served.signatures["serving_default"](images=tf.zeros([2, 50, 70, 3], tf.uint8))
    assert pixels["boxes"].shape == (2, 5, 4)
    image = encode(photo("coffee")[::8, ::8])
    by_bytes = served.signatures["image_bytes"](image_bytes=tf.constant([image, image]))
    assert by_bytes["boxes"].shape == (2, 5, 4)
    np.testing.assert_allclose(by_bytes["boxes"][0], by_bytes["boxes"][1])
    with pytest.raises(ValueError, match="is not a localisation run"):
        serving.export_net(nets.Net.of_run(tiny_run), str(tmp_path / "export"),
                           localisation_run=tiny_run)
    keras.backend.clear_session()

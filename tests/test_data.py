"""keras_vgg.data: training and evaluation datasets, seeding, sharding, distribution."""

import logging
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import REPLICA_DEVICES
from image_files import (
    broken_files,
    encode,
    imagenet_folder,
    photo,
    write,
)

from keras_vgg import data, image_ops, imagenet, localisation_data


def test_input_pipelines_split_the_epoch_between_them(tmp_path):
    good = imagenet_folder(str(tmp_path), ["n01", "n02"], per_class=5)
    seen = []
    for index in range(3):
        context = tf.distribute.InputContext(3, index, 3)
        dataset = data.train_dataset(f"folder:{tmp_path}", global_batch_size=6, seed=0,
                                     input_context=context, with_ids=True)
        seen += [i.decode() for _, _, ids in dataset for i in ids.numpy()]
    assert sorted(seen) == sorted(good)


def test_data_service_with_several_pipelines_needs_a_job_name(tmp_path):
    with pytest.raises(ValueError, match="shared `job_name`"):
        data.train_dataset(f"folder:{tmp_path}", global_batch_size=4,
                           input_context=tf.distribute.InputContext(2, 0, 2),
                           data_service="grpc://localhost:1")


def test_labels_follow_their_images(tmp_path):
    imagenet_folder(str(tmp_path), ["n01", "n02", "n03"], per_class=2)
    dataset = data.train_dataset(f"folder:{tmp_path}", global_batch_size=4, seed=0,
                                 with_ids=True)
    for _, labels, ids in dataset:
        for label, path in zip(labels.numpy(), ids.numpy(), strict=True):
            assert ["n01", "n02", "n03"][label] == path.decode().split(os.sep)[-2]


def test_every_pipeline_runs_without_tf_data_autotuning_or_autograph(demo_images, caplog):
    """Autotuning stalled one pass in four on one core (`data.prefetched`); AutoGraph's
    conversion of the pipelines' functions cost each process seconds
    (`requires_tensorflow.unconverted`)."""
    tf.autograph.set_verbosity(1)
    try:
        with caplog.at_level(logging.INFO, logger="tensorflow"):
            train = data.train_dataset(f"folder:{demo_images}/train", global_batch_size=2)
            views = [data.eval_dataset(f"folder:{demo_images}/val", view=view,
                                       test_scale=32, crop_size=32)
                     for view in data.TEST_VIEWS]
            boxed = localisation_data.centre_dataset(
                f"folder:{demo_images}/val?boxes={demo_images}/boxes/val", test_scale=32,
                crop_size=32)
            localisation_data.whole_images(
                f"folder:{demo_images}/val?boxes={demo_images}/boxes/val")
    finally:
        tf.autograph.set_verbosity(0)
    for dataset in [train, *views, boxed]:
        assert dataset.options().autotune.enabled is False
    converted = [record.getMessage() for record in caplog.records
                 if "keras_vgg" in record.getMessage() or "<lambda>" in record.getMessage()]
    assert not converted, converted[:3]


def batches(dataset):
    return [(images.numpy(), labels.numpy()) for images, labels in dataset]


def test_seeded_pipeline_is_reproducible_and_rerandomized_each_epoch(tmp_path):
    imagenet_folder(str(tmp_path), ["n01", "n02"], per_class=3)

    def make(seed):
        return data.train_dataset(f"folder:{tmp_path}", global_batch_size=3, seed=seed)

    first, again = batches(make(1)), batches(make(1))
    for (a, la), (b, lb) in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(la, lb)
    dataset = make(1)
    epoch1, epoch2 = batches(dataset), batches(dataset)
    assert not all(np.array_equal(a, b) for (a, _), (b, _) in zip(epoch1, epoch2, strict=True))
    other = batches(make(2))
    assert not all(np.array_equal(a, b) for (a, _), (b, _) in zip(first, other, strict=True))


def test_epoch_keyed_pipeline_is_a_function_of_seed_and_epoch(tmp_path):
    good = imagenet_folder(str(tmp_path), ["n01", "n02"], per_class=4)
    epoch = tf.Variable(0, dtype=tf.int64)

    def one_epoch(value, seed=5):
        epoch.assign(value)
        dataset = data.train_dataset(f"folder:{tmp_path}", global_batch_size=3, seed=seed,
                                     epoch=epoch, with_ids=True)
        return [(x.numpy(), [i.decode() for i in ids.numpy()]) for x, _, ids in dataset]

    first, again, second = one_epoch(0), one_epoch(0), one_epoch(1)
    for (a, ids_a), (b, ids_b) in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)
        assert ids_a == ids_b
    assert sorted(sum((ids for _, ids in second), [])) == sorted(good)
    assert [ids for _, ids in first] != [ids for _, ids in second]  # a new order each epoch
    with pytest.raises(ValueError, match="needs a seed"):
        data.train_dataset(f"folder:{tmp_path}", global_batch_size=3, epoch=epoch)


def test_preprocessing_matches_the_weights(tmp_path):
    imagenet_folder(str(tmp_path), ["n01"], per_class=2)

    def images(mode):
        dataset = data.train_dataset(f"folder:{tmp_path}", global_batch_size=2, seed=3,
                                     preprocessing=mode, colour=False, flip=False)
        return next(iter(dataset))[0].numpy()

    caffe, torch_mode = images("caffe"), images("torch")
    rgb = caffe[..., ::-1] + np.array([123.68, 116.779, 103.939])
    std = np.array([0.229, 0.224, 0.225])
    np.testing.assert_allclose(torch_mode, (rgb / 255 - [0.485, 0.456, 0.406]) / std,
                               rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("mode", ["caffe", "torch", "tf"])
@pytest.mark.parametrize("shape", [(3, 17, 23, 3), (17, 23, 3)])
def test_the_fused_preprocessing_is_keras_preprocess_input(mode, shape):
    pixels = np.random.default_rng(0).uniform(0, 255, shape).astype("float32")
    expected = keras.applications.imagenet_utils.preprocess_input(pixels.copy(), mode=mode)
    fused = data.preprocessed(tf.constant(pixels), mode).numpy()
    # caffe's map is a channel reversal and a shift: the same float32 operations, exactly
    tolerance = 0 if mode == "caffe" else 1e-6
    np.testing.assert_allclose(fused, expected, rtol=tolerance, atol=tolerance)


@pytest.mark.parametrize(
    "kwargs, error",
    [(dict(scale=(256, 512), crop_size=300), "larger than the smallest training scale"),
     (dict(scale=256, crop_size=(224, 300)), "larger than the smallest training scale"),
     (dict(scale="512,256"), "S_min <= S_max"), (dict(scale=(0, 0)), "0 < S_min"),
     (dict(crop_size=(0, 10)), "crop_size"), (dict(global_batch_size=0), "at least 1")],
)
def test_bad_augmentation_arguments(kwargs, error, tmp_path):
    with pytest.raises(ValueError, match=error):
        data.train_dataset(f"folder:{tmp_path}", **{"global_batch_size": 2, **kwargs})


@pytest.mark.parametrize(
    "kwargs, error",
    [(dict(test_scale=200), "larger than the test scale Q=200"),
     (dict(test_scale=256, crop_size=(224, 300)), r"\(224, 300\) is larger than the test"),
     (dict(test_scale=256, crop_size=(300, 224)), r"\(300, 224\) is larger than the test"),
     (dict(batch_size=0), "at least 1, got 0")])
def test_bad_evaluation_arguments(kwargs, error, tmp_path):
    with pytest.raises(ValueError, match=error):
        data.eval_dataset(f"folder:{tmp_path}", **kwargs)


def test_eval_views(tmp_path):
    folder = tmp_path / "val"
    write(str(folder), {"a.jpg": encode(photo("coffee")), "b.jpg": encode(photo("astronaut"))})
    labels = tmp_path / "labels.txt"
    labels.write_text("a.jpg 1\nb.jpg 2\n")
    spec = f"folder:{folder}?labels={labels}"
    centre = list(data.eval_dataset(spec, view="center", test_scale=256, batch_size=8))
    assert [tuple(x.shape) for x, _ in centre] == [(2, 224, 224, 3)]
    coffee = image_ops.rescale_shorter_side(tf.io.decode_jpeg(encode(photo("coffee"))), 256)
    np.testing.assert_allclose(  # 256x384: the crop is 16 rows and 80 columns in
        centre[0][0][0], imagenet.preprocess_input(coffee[16:240, 80:304]), atol=1e-4)
    original, label = next(iter(data.eval_dataset(spec, view="original")))
    assert label.shape == () and int(label) == 1
    np.testing.assert_array_equal(original[0], tf.io.decode_jpeg(encode(photo("coffee"))))
    crops = next(iter(data.eval_dataset(spec, view="multi_crop", test_scale=256,
                                        flip=True, preprocessing="tf")))[0]
    assert crops.shape == (50, 224, 224, 3)
    decoded = tf.io.decode_jpeg(encode(photo("coffee")))
    scaled = image_ops.rescale_shorter_side(decoded, 256) / 127.5 - 1
    np.testing.assert_allclose(crops[0], scaled[:224, :224], atol=1e-4)  # top left
    np.testing.assert_allclose(crops[2], scaled[:224, 80:304], atol=1e-4)  # top middle (w 384)
    np.testing.assert_allclose(crops[24], scaled[-224:, -224:], atol=1e-4)  # bottom right
    np.testing.assert_allclose(crops[25], crops[0][:, ::-1], atol=1e-6)  # mirrored


def collect_ids_with_replicas(source, replicas, batch):
    """The ids of the images the dataset gives under MirroredStrategy on `replicas` logical
    CPUs, and `(the replicas that got some, the strategy's replicas)`."""
    strategy = tf.distribute.MirroredStrategy(REPLICA_DEVICES[:replicas])
    dataset = strategy.distribute_datasets_from_function(
        lambda context: data.train_dataset(source, global_batch_size=batch,
                                           input_context=context, seed=0, with_ids=True))
    ids, used = [], set()
    for _, _, per_replica in dataset:
        for index, local in enumerate(strategy.experimental_local_results(per_replica)):
            for image_id in local.numpy():
                ids.append(image_id.decode())
                used.add(index)
    return ids, (len(used), strategy.num_replicas_in_sync)


@pytest.mark.slow
def test_four_replicas_see_every_image_exactly_once(tmp_path):
    good = imagenet_folder(str(tmp_path), ["n01", "n02", "n03"], per_class=7)  # 21 images
    write(str(tmp_path / "n03"), broken_files())
    ids, (used, replicas) = collect_ids_with_replicas(f"folder:{tmp_path}", 4, batch=8)
    assert sorted(ids) == sorted(good)
    assert (used, replicas) == (4, 4)


@pytest.mark.slow
def test_tf_data_service_serves_each_image_once(tmp_path):
    good = imagenet_folder(str(tmp_path), ["n01", "n02"], per_class=5)
    dispatcher = tf.data.experimental.service.DispatchServer()
    address = dispatcher.target.split("://")[1]
    workers = [tf.data.experimental.service.WorkerServer(
        tf.data.experimental.service.WorkerConfig(dispatcher_address=address))
        for _ in range(2)]
    dataset = data.train_dataset(f"folder:{tmp_path}", global_batch_size=3, seed=0,
                                 with_ids=True, data_service=dispatcher.target)
    ids = [i.decode() for _, _, batch in dataset for i in batch.numpy()]
    assert sorted(ids) == sorted(good)
    del workers

import time

import numpy as np
import pytest
from conftest import NARROW, forward
from image_files import encode, imagenet_folder, photo, write
from PIL import Image

import demo_data
import keras_vgg
from keras_vgg import evaluation, nets


def test_top_k_error():
    probabilities = np.array([[0.1, 0.5, 0.2, 0.15, 0.05, 0.0],
                              [0.6, 0.1, 0.1, 0.1, 0.05, 0.05],
                              [0.0, 0.1, 0.2, 0.3, 0.4, 0.0]])
    labels = np.array([1, 3, 5])
    assert evaluation.top_k_error(probabilities, labels, 1) == pytest.approx(2 / 3)
    assert evaluation.top_k_error(probabilities, labels, 5) == pytest.approx(1 / 3)


@pytest.fixture
def square_images(tmp_path):
    """Three 32 x 32 photographs with labels 0, 1, 2: at Q = 32 every protocol sees the
    whole image, so each is checkable against the plain model."""
    names = ["astronaut", "coffee", "chelsea"]
    files = {}
    for name in names:
        image = photo(name)
        side = min(image.shape[:2])
        square = Image.fromarray(image[:side, :side]).resize((CROP, CROP))
        files[f"{name}.png"] = encode(np.asarray(square), "PNG")
    write(str(tmp_path / "val"), files)
    labels = tmp_path / "labels.txt"
    labels.write_text("".join(f"{name}.png {i}\n" for i, name in enumerate(names)))
    return f"folder:{tmp_path / 'val'}?labels={labels}", [files[f"{n}.png"] for n in names]


CROP = 32


def small_model():
    return keras_vgg.vgg("A", width_multiplier=NARROW, input_shape=(CROP, CROP, 3), classes=10)


def plain_posteriors(model, encoded, flip):
    import tensorflow as tf

    images = np.stack([tf.io.decode_png(e, channels=3).numpy() for e in encoded]).astype("float32")
    x = keras_vgg.preprocess_input(images.copy())
    p = forward(model, x)
    if flip:
        p = (p + forward(model, x[:, :, ::-1])) / 2
    return p


# Through evaluation's pipelines; tests/test_inference.py checks the dense path itself.
@pytest.mark.slow
@pytest.mark.parametrize("flip", [False, True])
def test_protocols_at_the_crop_size_reduce_to_the_plain_model(square_images, flip):
    source, encoded = square_images
    model = small_model()
    expected = plain_posteriors(model, encoded, flip)
    labels = np.array([0, 1, 2])
    start = time.perf_counter()
    results = evaluation.evaluate(model, source, protocols=("dense", "multi_crop", "combined"),
                                  test_scales=(CROP,), flip=flip)
    wall_seconds = time.perf_counter() - start
    for result in results:
        assert result.images == 3
        assert result.top1_error == pytest.approx(evaluation.top_k_error(expected, labels, 1))
        assert result.top5_error == pytest.approx(evaluation.top_k_error(expected, labels, 5))
        # the rate's time is part of the call's: no faster than the call allows
        assert 0 < result.images / result.images_per_second <= wall_seconds
    # The errors of three images agree by chance too: the posteriors themselves must.
    for protocol in ("dense", "multi_crop"):
        found, found_labels = evaluation.posteriors(model, source, protocol=protocol,
                                                    test_scales=(CROP,), flip=flip)
        assert sorted(found_labels) == [0, 1, 2]  # read in file order; label i is image i
        np.testing.assert_allclose(found, expected[found_labels], atol=1e-5)


@pytest.mark.slow  # through evaluation's pipelines; the dense path's own is test_inference's
def test_several_scales_average_their_posteriors(square_images):
    source, _ = square_images
    model = small_model()
    at_32, at_48, both = (
        evaluation.posteriors(model, source, protocol=protocol, test_scales=scales,
                              flip=False)[0]
        for protocol, scales in (("dense", (32,)), ("dense", (48,)), ("dense", (32, 48))))
    np.testing.assert_allclose(both, (at_32 + at_48) / 2, rtol=1e-5)
    assert not np.allclose(at_32, at_48)
    crops = [evaluation.posteriors(model, source, protocol="multi_crop", test_scales=scales,
                                   flip=False)[0] for scales in ((32,), (48,), (32, 48))]
    np.testing.assert_allclose(crops[2], (crops[0] + crops[1]) / 2, rtol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("flip", [False, True])
def test_an_exported_saved_model_evaluates_like_dense_evaluation(square_images, tmp_path,
                                                                 flip):
    import tensorflow as tf

    from keras_vgg import serving

    source, encoded = square_images
    model = small_model()
    path = serving.export_saved_model(
        model, str(tmp_path / "exported"), model_name="a", warmup=False,
        options=serving.ServingOptions(test_scale=48, flip=flip))
    dense, labels = evaluation.posteriors(model, source, protocol="dense", test_scales=(48,),
                                          flip=flip)
    serve = tf.saved_model.load(path).signatures[serving.SIGNATURE_BYTES]
    served = serve(image_bytes=tf.constant([encoded[label] for label in labels]))
    np.testing.assert_allclose(served["probabilities"], dense, atol=1e-5)
    (expected,) = evaluation.evaluate(model, source, protocols=("dense",), test_scales=(48,),
                                      flip=flip)
    result = evaluation.evaluate_saved_model(path, source)
    assert result.protocol == ("dense+flip (SavedModel)" if flip else "dense (SavedModel)")
    assert (result.test_scales, result.images) == ((48,), 3)
    assert (result.top1_error, result.top5_error) == (expected.top1_error, expected.top5_error)
    with pytest.raises(ValueError, match="is not a keras_vgg export"):
        evaluation.evaluate_saved_model(str(tmp_path), source)


def test_bad_evaluation_arguments(square_images):
    source, _ = square_images
    model = keras_vgg.vgg("A", width_multiplier=NARROW, classes=10)
    with pytest.raises(ValueError, match="unknown protocols"):
        evaluation.evaluate(model, source, protocols=("ten_crop",))
    with pytest.raises(ValueError, match="at least the crop 224"):
        evaluation.evaluate(model, source, test_scales=(200,))


def test_table_is_shaped_like_the_papers():
    result = evaluation.Result("dense", (256, 384, 512), 0.248, 0.075, 50000, 12.5)
    lines = evaluation.table([result]).splitlines()
    assert lines[2] == "| dense | 256,384,512 | 24.8 | 7.5 | 50000 | 12.5 |"


@pytest.mark.slow
def test_a_run_is_evaluated_with_its_preprocessing_and_q_set(tiny_run, demo_images, monkeypatch,
                                                            tmp_path):
    seen = {}
    original = evaluation.evaluate

    def spy(model, source, **options):
        seen.update(options, crop=model.input_shape[1], classes=model.output_shape[-1])
        return original(model, source, **options)

    monkeypatch.setattr(evaluation, "evaluate", spy)
    (result,) = evaluation.evaluate_net(nets.Net.of_run(tiny_run), f"folder:{demo_images}/val",
                                        max_images=3)
    assert (seen["test_scales"], seen["preprocessing"], seen["crop"], seen["classes"]) == (
        (40, 44, 48), "caffe", 32, 10)
    assert result.images == 3 and result.test_scales == (40, 44, 48)
    imagenet_folder(str(tmp_path), ["circle", "square"], per_class=1)
    with pytest.raises(ValueError, match="labels 2 classes where 10 are expected"):
        evaluation.evaluate_net(nets.Net.of_run(tiny_run), f"folder:{tmp_path}")


def test_an_image_beyond_the_bounds_is_skipped_by_the_saved_model_evaluation(
        tiny_export, demo_images, tmp_path, capfd):
    import shutil

    import numpy as np
    from image_files import encode

    shutil.copytree(demo_images / "val", tmp_path / "val")
    first_class = sorted(p.name for p in (tmp_path / "val").iterdir())[0]
    strip = tmp_path / "val" / first_class / "strip.JPEG"
    strip.write_bytes(encode(np.full((1, 10000, 3), 128, np.uint8)))
    result = evaluation.evaluate_saved_model(tiny_export, f"folder:{tmp_path}/val")
    assert result.images == 10
    reason = "is 10000x1 pixels, beyond the 8:1 aspect-ratio bound"
    assert f"{strip}: {reason}" in capfd.readouterr().err


# --- ConvNet fusion (Sect. 4.4) ---------------------------------------------------------


def other_net(name="random", seed=1):
    """A net of the tiny run's shape with other weights."""
    import keras

    keras.utils.set_random_seed(seed)
    model = keras_vgg.vgg("A", width_multiplier=NARROW, input_shape=(32, 32, 3), classes=10)
    return nets.Net.of_model(model, name=name, test_scales=(40, 48),
                             class_names=demo_data.CLASSES)


@pytest.mark.slow
def test_fusion_is_the_mean_of_the_nets_posteriors(tiny_run, demo_images):
    source = f"folder:{demo_images}/val"
    fused = [nets.Net.of_run(tiny_run), other_net()]
    posteriors_of, labels = evaluation.nets_posteriors(fused, source)
    for net, together in zip(fused, posteriors_of, strict=True):
        alone, alone_labels = evaluation.posteriors(net.build(), source, protocol="dense",
                                                    test_scales=net.test_scales)
        np.testing.assert_allclose(together, alone, rtol=1e-6)
        np.testing.assert_array_equal(labels, alone_labels)
    rows = evaluation.fuse(fused, source)
    mean = (posteriors_of[0] + posteriors_of[1]) / 2
    assert rows[-1].nets == "tiny + random" and rows[-1].images == 10
    assert rows[-1].top1_error == evaluation.top_k_error(mean, labels, 1)
    assert rows[-1].top5_error == evaluation.top_k_error(mean, labels, 5)
    table = evaluation.fusion_table(rows)
    assert table.splitlines()[0].startswith("| ConvNet model(s) | protocol | top-1 error (%)")
    assert len(table.splitlines()) == 2 + 3


@pytest.mark.slow
def test_a_net_fused_with_itself_is_unchanged(tiny_run, demo_images):
    net = nets.Net.of_run(tiny_run)
    single, fused = evaluation.fuse([net, net], f"folder:{demo_images}/val",
                                    protocol="multi_crop")[1:]
    assert (single.top1_error, single.top5_error) == (fused.top1_error, fused.top5_error)


def test_fusion_refuses_one_net_and_other_class_counts(tiny_run, demo_images):
    net = nets.Net.of_run(tiny_run)
    with pytest.raises(ValueError, match="fusion needs at least two nets, got 1"):
        evaluation.fuse([net], f"folder:{demo_images}/val")
    other = nets.Net.of_model(keras_vgg.vgg("A", width_multiplier=NARROW,
                                            input_shape=(32, 32, 3), classes=5), name="five")
    with pytest.raises(ValueError, match=r"different numbers of classes: \{'tiny': 10, "
                                         r"'five': 5\}"):
        evaluation.fuse([net, other], f"folder:{demo_images}/val")

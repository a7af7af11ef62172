"""Which net (`keras_vgg.nets`): a run, weights or an export, with what its weights expect."""

import dataclasses

import numpy as np
import pytest
from conftest import NARROW

from keras_vgg import imagenet, nets


def test_a_run_gives_its_network_weights_preprocessing_scales_and_classes(tiny_run):
    net = nets.Net.of_run(tiny_run.directory)
    assert (net.name, net.config, net.crop_size, net.width_multiplier, net.preprocessing) == (
        "tiny", "A", 32, NARROW, "caffe")
    assert (net.test_scale, net.test_scales) == (44, (40, 44, 48))
    assert net.class_ids == tiny_run.class_ids and net.num_classes == 10
    assert net.weights == tiny_run.weights_path
    assert nets.Net.of_run(tiny_run, test_scales=(40,)).test_scales == (40,)
    model = net.build()
    assert model.output_shape == (None, 10)
    for mine, theirs in zip(model.get_weights(), tiny_run.build_model().get_weights(),
                            strict=True):
        np.testing.assert_array_equal(mine, theirs)


def test_an_unfinished_run_is_named(tiny_run, tmp_path):
    unfinished = dataclasses.replace(tiny_run, directory=str(tmp_path))
    unfinished.save(str(tmp_path))
    with pytest.raises(ValueError, match="has no trained weights: .* is missing"):
        nets.Net.of_run(tmp_path)


def test_weights_give_their_sources_preprocessing_and_scales(tiny_run, tmp_path):
    net = nets.Net.of_weights("a", tiny_run.weights_path, classes=10, crop_size=32,
                              width_multiplier=NARROW)
    assert (net.name, net.config, net.preprocessing, net.test_scale) == (
        "vgg11", "A", "caffe", 384)
    assert net.class_ids == tuple(str(i) for i in range(10))
    assert net.build().output_shape == (None, 10)
    (tmp_path / "vgg16.pth").write_bytes(b"")
    torch = nets.Net.of_weights("vgg16", tmp_path / "vgg16.pth")
    assert (torch.config, torch.preprocessing, torch.test_scales, torch.num_classes) == (
        "D", "torch", (256,), 1000)
    assert torch.class_names == tuple(name for _, name in imagenet.class_index().values())
    with pytest.raises(ValueError, match="contradicts imagenet"):
        nets.Net.of_weights("D", "imagenet", preprocessing="tf")
    with pytest.raises(ValueError, match="3 class names for a net with 2 classes"):
        nets.Net.of_weights("D", "imagenet", classes=2, class_names=["a", "b", "c"])


def test_an_export_gives_what_it_was_exported_with(tiny_run, tiny_export, tmp_path):
    path = tiny_export
    net = nets.Net.of_saved_model(path)
    assert (net.name, net.saved_model, net.test_scale, net.preprocessing) == (
        "tiny", path, 44, "caffe")
    assert (net.class_ids, net.class_names) == (tiny_run.class_ids, tiny_run.class_names)
    with pytest.raises(ValueError, match="is an export: it runs as a SavedModel"):
        net.build()
    with pytest.raises(ValueError, match="is not a keras_vgg export"):
        nets.Net.of_saved_model(tmp_path)


def test_class_labels_default_to_imagenets_for_1000_and_indices_else():
    ids, names = nets.class_labels(1000)
    assert (ids[0], names[0]) == ("n01440764", "tench")
    assert nets.class_labels(3) == (("0", "1", "2"), ("0", "1", "2"))
    assert nets.class_labels(2, ["cat", "dog"]) == (("cat", "dog"), ("cat", "dog"))

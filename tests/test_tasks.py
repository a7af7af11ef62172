"""Each task as an object: what it builds, compiles, watches and reads."""

import types

import pytest
from conftest import NARROW, tiny_run_config

from keras_vgg import callbacks, localisation, runs, tasks


def run_of(task, classes=5, **overrides):
    config = tiny_run_config("/tmp/run", "/images", task=task, batch_size=32, **overrides)
    return runs.Run.of(config, [f"c{i}" for i in range(classes)])


def test_every_task_of_a_run_config_has_an_object():
    assert set(tasks.TASKS) == {"classification", "localisation"}
    for name, task in tasks.TASKS.items():
        assert tasks.of(name) is task is tasks.of(run_of(name).config)
    with pytest.raises(ValueError, match=r"task='detection': expected one of"):
        tasks.of("detection")


@pytest.mark.parametrize("task, init_from, new_layers, rate, named", [
    ("classification", None, (), 1e-2, "rate"),
    ("classification", "imagenet", (), 1e-3, "fine-tuning rate"),
    ("classification", "imagenet", ("predictions",), 1e-2, "rate with new layers (predictions)"),
    ("classification", "preset", ("fc1", "fc2", "predictions"), 1e-2,
     "rate with new layers (fc1, fc2, predictions)"),
    ("localisation", None, (), 1e-3, "localisation rate"),
    ("localisation", "run", (), 1e-3, "localisation rate"),
])
def test_the_papers_rate_is_the_tasks(task, init_from, new_layers, rate, named):
    config = types.SimpleNamespace(task=task, init_from=init_from)
    assert tasks.of(task).paper_learning_rate(config, new_layers) == (rate, named)


@pytest.mark.parametrize("task, outputs, loss, monitor", [
    ("classification", 5, "SparseCategoricalCrossentropy", "val_accuracy"),
    ("localisation", 4 * 5, "BoxLoss", "val_loss"),
])
def test_each_task_builds_and_compiles_its_net(task, outputs, loss, monitor):
    run = run_of(task)
    model = tasks.of(task).build(run)
    assert model.output_shape == (None, outputs)
    tasks.of(task).compile(model, run)
    assert type(model.loss).__name__ == loss
    assert tasks.of(task).monitor == monitor
    scr = run_of("localisation", box_regression="scr")
    assert localisation.mode_of(tasks.of("localisation").build(scr)) == ("scr", None)


def test_each_task_reads_its_validation():
    classification = types.SimpleNamespace(
        run=run_of("classification"), val_accuracy=0.2, val_images=1000, val_loss=1.5,
        val_top5=0.9)
    task = tasks.of("classification")
    assert task.learnt(classification, callbacks.above_chance) is False  # chance is 20%
    assert "no better than guessing among 5 classes (20.0%)" in task.not_learnt(classification)
    assert task.summary(classification) == "loss 1.5, top-1 accuracy 20.0% (error 80.0%)"
    six = types.SimpleNamespace(**{**vars(classification), "run": run_of(
        "classification", classes=6)})
    assert task.summary(six).endswith("(error 80.0%), top-5 accuracy 90.0%")
    boxes = types.SimpleNamespace(run=run_of("localisation"), val_accuracy=0.0, val_loss=0.2)
    assert tasks.of("localisation").learnt(boxes, callbacks.above_chance) is False
    assert "box loss 0.2" in tasks.of("localisation").summary(boxes)


def test_a_narrow_net_is_what_the_run_config_says():
    model = tasks.classifier(run_of("classification"))
    assert model.input_shape == (None, 32, 32, 3)
    assert model.get_layer("fc1").units == int(4096 * NARROW)


@pytest.mark.parametrize("right, images, classes, learnt", [
    (12, 12, 2, True),     # guessing does this once in 4096
    (11, 12, 2, None),     # once in 313: not beyond three standard errors, yet rare
    (10, 12, 2, None),     # once in 52
    (8, 12, 2, False),     # once in 5
    (2, 2, 2, None),       # too few even when every image is right
    (250, 1000, 5, True),  # chance is 20%
    (215, 1000, 5, False),  # once in 8
])
def test_a_classifiers_verdict_passes_fails_or_says_the_images_are_too_few(
        right, images, classes, learnt):
    result = types.SimpleNamespace(run=types.SimpleNamespace(num_classes=classes),
                                   val_accuracy=right / images, val_images=images)
    assert tasks.of("classification").learnt(result, callbacks.above_chance) is learnt


def test_guessing_reaches_is_the_binomial_tail():
    assert tasks.guessing_reaches(10 / 12, 2, 12) == pytest.approx(79 / 4096)
    assert tasks.guessing_reaches(1.0, 4, 3) == pytest.approx(1 / 64)
    assert tasks.guessing_reaches(0.0, 10, 50) == 1.0
    assert tasks.guessing_reaches(0.101, 1000, 50_000) < 1e-300

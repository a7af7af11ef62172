"""The commands (`keras_vgg.cli`), run in-process as their console commands run them: the
flags, what each reads from a run directory, and one-line errors."""

import configparser
import csv
import dataclasses
import importlib
import re
import shutil

import numpy as np
import pytest
import tensorflow as tf
from absl import flags
from conftest import NARROW, ROOT, names, run_command
from image_files import imagenet_folder

import keras_vgg
from keras_vgg import linear, runs, serving
from keras_vgg.cli import evaluate, export, train, transfer


def test_every_console_command_is_a_cli_module_with_run():
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    commands = dict(line.split(" = ") for line in
                    setup["options.entry_points"]["console_scripts"].strip().splitlines())
    assert sorted(commands) == ["keras-vgg-eval", "keras-vgg-export", "keras-vgg-predict",
                                "keras-vgg-train", "keras-vgg-transfer"]
    for command, target in commands.items():
        module, function = target.split(":")
        loaded = importlib.import_module(module)
        assert callable(getattr(loaded, function)) and loaded.PROGRAM == command
    assert setup["metadata"]["license_files"] == "LICENSE"
    assert "Apache License" in (ROOT / "LICENSE").read_text()


# --- keras-vgg-train ---------------------------------------------------------------------


@pytest.mark.parametrize("arguments, message", [
    (["--config=F"], "keras-vgg-train: error: unknown VGG config 'F'"),
    (["--val_data="], "keras-vgg-train: error: val_data is needed for folder: and tfrecord:"),
    (["--data="], "keras-vgg-train: error: data is required"),
    (["--dropout=1.5"], "keras-vgg-train: error: dropout must be in [0, 1)"),
    (["--init_from=/no/run"], "keras-vgg-train: error: init_from: /no/run: no such weights"),
    (["--model_dir=/dev/null/run", "--batch_size=4"],
     "error: model_dir '/dev/null/run' cannot be created"),
])
def test_bad_flags_fail_before_training(demo_images, tmp_path, capsys, arguments, message):
    assert run_command(train, f"--data=folder:{demo_images}/train",
                       f"--val_data=folder:{demo_images}/val", f"--model_dir={tmp_path}",
                       *arguments) == 1
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run.json").exists()


def test_the_flags_are_the_run_configs_fields():
    given = flags.FlagValues()
    train.define_flags(given)
    given(["keras-vgg-train", "--model_dir=/r", "--scale=256,512",
           "--mixed_precision=bfloat16", "--learning_rate=0.02", "--seed=3", "--deterministic",
           "--init=gaussian", "--val_data=folder:/v", "--test_scale=300", "--config=vgg16"])
    assert train.config_from_flags(given) == runs.RunConfig(
        model_dir="/r", scale=(256, 512), mixed_precision="bfloat16", learning_rate=0.02,
        seed=3, deterministic=True, init="gaussian", val_data="folder:/v", test_scale=300)
    defaults = flags.FlagValues()
    train.define_flags(defaults)
    defaults(["keras-vgg-train", "--model_dir=/r"])
    assert train.config_from_flags(defaults) == runs.RunConfig(model_dir="/r")


@pytest.mark.slow
def test_a_run_that_ends_at_chance_exits_2_with_what_to_try(demo_images, tmp_path, capsys):
    assert run_command(train, f"--data=folder:{demo_images}/train", "--config=A",
                       f"--val_data=folder:{demo_images}/val", f"--model_dir={tmp_path}/run",
                       f"--width_multiplier={NARROW}", "--scale=40", "--crop_size=32",
                       "--epochs=1", "--learning_rate=1e-9", "--seed=0") == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("keras-vgg-train: ")
    assert names(error, "did not learn", "10 classes (10.0%)", "--learning_rate=3e-09",
                 "1e-09", "--epochs", "1"), error
    assert (tmp_path / "run" / "final.weights.h5").exists()  # the run itself is complete


# --- keras-vgg-eval ----------------------------------------------------------------------


@pytest.mark.slow
def test_eval_reads_a_run_directory_and_shows_progress(tiny_run, demo_images, capsys):
    assert run_command(evaluate, f"--model_dir={tiny_run.directory}",
                       f"--data=folder:{demo_images}/val",
                       "--protocols=dense,multi_crop,combined") == 0
    output = capsys.readouterr().out
    rows = [line for line in output.splitlines() if line.startswith("| ")]
    assert [row.split("|")[1].strip() for row in rows[1:]] == [
        "dense", "multi_crop", "combined"]
    # the run's multi-scale set: jittered S in [40, 48] -> {40, 44, 48}
    assert all("| 40,44,48 |" in row and "| 10 |" in row for row in rows[1:])
    assert "dense at Q=40,44,48:" in output and "multi_crop at Q=40,44,48:" in output
    assert re.search(r"^10/10 .*image", output, re.MULTILINE)  # the progress bar's last line
    assert run_command(evaluate, f"--model_dir={tiny_run.directory}", "--crop_size=32",
                       f"--data=folder:{demo_images}/val") == 1
    assert "error: --model_dir describes the network: drop --crop_size" in (
        capsys.readouterr().err)


def test_eval_samples_max_images_at_random(tiny_run, demo_images, capsys):
    assert run_command(evaluate, f"--model_dir={tiny_run.directory}",
                       f"--data=folder:{demo_images}/val", "--max_images=4") == 0
    assert "| 4 |" in capsys.readouterr().out
    with pytest.raises(flags.IllegalFlagValueError, match="max_images"):
        run_command(evaluate, f"--model_dir={tiny_run.directory}", "--max_images=0")


def test_eval_with_weights_takes_the_datas_classes_and_refuses_a_q_below_the_crop(
        tiny_run, demo_images, capsys):
    common = ["--config=A", f"--weights={tiny_run.weights_path}",
              f"--data=folder:{demo_images}/val", "--crop_size=32",
              f"--width_multiplier={NARROW}"]
    assert run_command(evaluate, *common, "--test_scales=44") == 0
    assert "| dense | 44 |" in capsys.readouterr().out
    assert run_command(evaluate, *common, "--test_scales=24") == 1
    assert "must be at least the crop 32" in capsys.readouterr().err


@pytest.mark.slow
def test_eval_reads_an_exported_saved_model(tiny_export, demo_images, capsys):
    path = tiny_export
    assert run_command(evaluate, f"--saved_model={path}",
                       f"--data=folder:{demo_images}/val") == 0
    assert "| dense (SavedModel) | 44 |" in capsys.readouterr().out
    with pytest.raises(flags.IllegalFlagValueError, match="model_dir, weights, saved_model"):
        run_command(evaluate, f"--saved_model={path}", "--weights=imagenet")


@pytest.mark.slow
def test_eval_fuses_several_runs_in_a_table_6(tiny_run, demo_images, capsys):
    assert run_command(evaluate, f"--model_dir={tiny_run.directory},{tiny_run.directory}",
                       f"--data=folder:{demo_images}/val", "--protocols=dense") == 0
    rows = [line.split("|")[1:3] for line in capsys.readouterr().out.splitlines()
            if line.startswith("| tiny")]
    assert [(name.strip(), protocol.strip()) for name, protocol in rows] == [
        ("tiny", "dense"), ("tiny", "dense"), ("tiny + tiny", "dense")]
    assert run_command(evaluate, "--config=A,A,A", f"--weights={tiny_run.weights_path},"
                       f"{tiny_run.weights_path}", f"--data=folder:{demo_images}/val") == 1
    assert "2 --weights and 3 --config: give one config for each, or one for all" in (
        capsys.readouterr().err)


# --- keras-vgg-export --------------------------------------------------------------------


@pytest.mark.slow
def test_export_takes_everything_from_a_run_directory(tiny_run, tmp_path, capsys):
    assert run_command(export, f"--model_dir={tiny_run.directory}",
                       f"--export_base={tmp_path}", "--nowarmup") == 0
    output = capsys.readouterr().out
    path = tmp_path / "tiny" / "1"  # the run directory's name
    assert f"Exporting tiny (config A, 10 classes, Q=44) ...\nWrote {path}\n" in output
    serve, ask = export.serving_commands(str(path))
    assert f"\n  {serve}\n" in output and output.endswith(f"\n  {ask}\n")
    assert serve == (f"docker run --rm -p 8500:8500 -p 8501:8501 -v {tmp_path}:/models "
                     "-e MODEL_NAME=tiny tensorflow/serving:2.20.0")
    assert ask.startswith("curl -s localhost:8501/v1/models/tiny:predict -d '")
    assert serving.read_options(str(path)) == serving.ServingOptions(test_scale=44, top_k=5)
    config = (tmp_path / "models.config").read_text()
    assert 'name: "tiny"' in config and 'base_path: "/models/tiny"' in config
    assert run_command(export, f"--model_dir={tiny_run.directory}", "--config=A",
                       f"--export_base={tmp_path}") == 1
    assert "error: --model_dir describes the network: drop --config" in (
        capsys.readouterr().err)


@pytest.mark.slow
def test_export_of_a_two_class_run_names_both_classes(tiny_run, tmp_path, capsys):
    two = runs.Run.of(tiny_run.config, ["cat", "dog"])
    two.save(str(tmp_path / "two classes"))
    model = two.build_model(weights=False)
    model.save_weights(str(tmp_path / "two classes" / runs.WEIGHTS_FILE))
    assert run_command(export, f"--model_dir={tmp_path}/two classes",
                       f"--export_base={tmp_path}/exported", "--nowarmup") == 0
    path = tmp_path / "exported" / "two_classes" / "1"
    assert serving.read_options(str(path)).top_k == 2
    answer = tf.saved_model.load(str(path)).signatures["serving_default"](
        images=tf.zeros([1, 50, 60, 3], tf.uint8))
    assert sorted(answer["top_k_names"].numpy()[0].astype(str)) == ["cat", "dog"]
    config = (tmp_path / "exported" / "models.config").read_text()
    assert config.count("config {") == 1 and '"/models/two_classes"' in config


@pytest.mark.slow
def test_export_with_weights_writes_a_version_and_refuses_bad_flags(tmp_path, capsys):
    model = keras_vgg.vgg("A", width_multiplier=NARROW, input_shape=(64, 64, 3), classes=7)
    weights = str(tmp_path / "trained.weights.h5")
    model.save_weights(weights)
    names = tmp_path / "classes.txt"
    names.write_text("".join(f"shape-{i}\n" for i in range(7)))
    common = ["--config=A", f"--weights={weights}", "--crop_size=64",
              f"--width_multiplier={NARROW}", f"--class_names={names}",
              f"--export_base={tmp_path / 'exported'}", "--nowarmup"]
    assert run_command(export, *common, "--test_scale=80") == 0
    output = capsys.readouterr().out
    assert "Exporting vgg11 (config A, 7 classes, Q=80)" in output
    assert "-e MODEL_NAME=vgg11 tensorflow/serving" in output
    path = tmp_path / "exported" / "vgg11" / "1"
    assert serving.read_classes(str(path))[1] == tuple(f"shape-{i}" for i in range(7))
    assert run_command(export, *common, "--test_scale=32") == 1
    assert "error: test_scale Q=32 is smaller than the model's training crop 64" in (
        capsys.readouterr().err)


# --- keras-vgg-transfer ------------------------------------------------------------------


@pytest.mark.slow
def test_transfer_learns_new_classes_from_descriptors_and_caches_them(tiny_run, tmp_path,
                                                                    capsys):
    import demo_data

    demo_data.write(str(tmp_path / "images"), train_per_class=6, val_per_class=3)
    command = [f"--model_dir={tiny_run.directory}", f"--data=folder:{tmp_path}/images/train",
               f"--val_data=folder:{tmp_path}/images/val", f"--output_dir={tmp_path}/transfer"]
    assert run_command(transfer, *command) == 0
    output = capsys.readouterr().out
    line = next(line for line in output.splitlines() if line.startswith("Transfer"))
    assert "fc2 descriptors (D=256, Q=40,44,48), linear SVM C=" in line
    recall = float(re.search(r"mean class recall ([0-9.]+)% on 30 held-out images of 10 "
                             r"classes \(chance 10.0%\)", line).group(1))
    # The tiny run trained one epoch and classifies at chance; its features still carry
    # a linear SVM to 30% (measured).
    assert recall >= 20, line
    with open(tmp_path / "transfer" / "per_class.csv") as file:
        assert len(list(csv.DictReader(file))) == 10
    assert run_command(transfer, *command) == 0
    again = capsys.readouterr().out
    assert again.count(": cached in ") == 2 and line in again


ROUND_SHAPES = ("circle", "dots", "ring")


def multi_label_folder(images, folder, labels_file):
    """The demo's class folders as one flat folder, each image labelled with its shape and,
    for round shapes, "round" too (lines 'FILE LABEL,LABEL')."""
    folder.mkdir()
    lines = []
    for class_folder in sorted(images.iterdir()):
        for image in sorted(class_folder.iterdir()):
            name = f"{class_folder.name}_{image.name}"
            shutil.copy(image, folder / name)
            extra = ",round" if class_folder.name in ROUND_SHAPES else ""
            lines.append(f"{name} {class_folder.name}{extra}\n")
    labels_file.write_text("".join(lines))
    return f"folder:{folder}?labels={labels_file}&multi_label=true"


@pytest.mark.slow
def test_transfer_on_multi_label_data_reports_mean_average_precision(tiny_run, tmp_path,
                                                                     capsys):
    import demo_data

    demo_data.write(str(tmp_path / "images"), train_per_class=20, val_per_class=10)
    train_data, val_data = (multi_label_folder(tmp_path / "images" / split,
                                               tmp_path / f"flat_{split}",
                                               tmp_path / f"{split}.txt")
                            for split in ("train", "val"))
    assert run_command(transfer, f"--model_dir={tiny_run.directory}", f"--data={train_data}",
                       f"--val_data={val_data}", f"--output_dir={tmp_path}/transfer",
                       "--folds=3") == 0
    line = next(line for line in capsys.readouterr().out.splitlines()
                if line.startswith("Transfer"))
    mean_ap = float(re.search(r"\(3-fold CV on 200 images\): mean average precision \(area "
                              r"AP\) ([0-9.]+)% on 100 held-out images of 11 classes\.",
                              line).group(1)) / 100
    with open(tmp_path / "transfer" / "per_class.csv") as file:
        rows = {row["class"]: row for row in csv.DictReader(file)}
    assert sorted(rows) == sorted([*demo_data.CLASSES, "round"])
    assert rows["round"]["held_out_images"] == "30" and rows["circle"]["held_out_images"] == "10"
    assert np.mean([float(row["average_precision"]) for row in rows.values()]) == (
        pytest.approx(mean_ap, abs=5e-4))
    # Chance: the mean AP of random scores for the same held-out labels (~15%). The
    # one-epoch tiny run's features reach 29% (measured).
    rng = np.random.default_rng(0)
    chance = np.mean([[linear.average_precision(rng.random(100), np.arange(100) < int(
        row["held_out_images"])) for _ in range(200)] for row in rows.values()])
    assert mean_ap > 1.5 * chance, (line, chance)
    assert run_command(transfer, f"--model_dir={tiny_run.directory}", f"--data={train_data}",
                       f"--val_data=folder:{tmp_path}/images/val",
                       f"--output_dir={tmp_path}/out") == 1
    assert "must both be multi-label or neither" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize("setup, message", [
    ("one_image", "classes ['circle'] have one training image"),
    ("bad_layer", "no layer 'fc9' in 'vgg11'"),
    ("empty", "is empty"),
])
def test_transfer_refuses_what_it_cannot_learn_from(tiny_run, tmp_path, capsys, setup,
                                                    message):
    imagenet_folder(str(tmp_path / "train"), ["circle", "square"], per_class=3)
    imagenet_folder(str(tmp_path / "val"), ["circle", "square"], per_class=1)
    extra = []
    if setup == "one_image":
        for image in sorted((tmp_path / "train" / "circle").iterdir())[1:]:
            image.unlink()
    elif setup == "bad_layer":
        extra = ["--layer=fc9"]
    else:
        (tmp_path / "empty").mkdir()
    data = tmp_path / ("empty" if setup == "empty" else "train")
    assert run_command(transfer, f"--model_dir={tiny_run.directory}", f"--data=folder:{data}",
                       f"--val_data=folder:{tmp_path}/val", f"--output_dir={tmp_path}/out",
                       *extra) == 1
    error = capsys.readouterr().err
    assert "keras-vgg-transfer: error: " in error and message in error, error


def test_imagenet_weights_that_cannot_be_fetched_are_named_in_one_line(
        tmp_path, monkeypatch, photographs, demo_images, capsys):
    """Offline: every command says which file to put where, in one line."""
    from keras_vgg import weights
    from keras_vgg.cli import predict

    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    unreachable = {key: dataclasses.replace(
        published, origin=f"http://127.0.0.1:9/{published.fname}")
        for key, published in weights.IMAGENET_WEIGHTS.items()}
    monkeypatch.setattr(weights, "IMAGENET_WEIGHTS", unreachable)
    fname = "vgg16_weights_tf_dim_ordering_tf_kernels.h5"
    for command, arguments in (
            (predict, ["--weights=imagenet", str(photographs / "chelsea.png")]),
            (export, ["--weights=imagenet", f"--export_base={tmp_path}/exported"]),
            (train, ["--init_from=imagenet", f"--data=folder:{demo_images}/train",
                     f"--val_data=folder:{demo_images}/val", f"--model_dir={tmp_path}/run"])):
        assert run_command(command, *arguments) == 1
        # Keras announces the download it tries; what follows is the error, in one line.
        lines = [line for line in capsys.readouterr().err.strip().splitlines()
                 if not line.startswith("Downloading data from ")]
        assert len(lines) == 1, lines
        error = lines[0]
        assert error.startswith(f"{command.PROGRAM}: error: ")
        assert (f"weights='imagenet': {fname} is not in the Keras cache and cannot be "
                f"downloaded") in error
        assert error.endswith(f"into {tmp_path / 'keras' / 'models'}")


def test_the_serving_snippets_of_export_readme_are_what_the_export_prints():
    text = (ROOT / "export" / "README.md").read_text()
    cwd = "/home/me/project"
    serve, ask = export.serving_commands(f"{cwd}/exported/mine/1")
    lines = [line.replace('"$PWD', cwd).replace(':/models"', ":/models")
             for line in text.splitlines()]
    assert serve in lines and ask in lines
    compose = (ROOT / "export" / "docker-compose.yml").read_text()
    assert "--model_config_file=/models/models.config" in compose
    assert f"tensorflow/serving:${{TF_SERVING_TAG:-{export.TF_SERVING_IMAGE.split(':')[1]}}}" \
           in compose

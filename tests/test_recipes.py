import csv
import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import NARROW

import keras_vgg

ROOT = Path(__file__).resolve().parents[1]


def run(script, *args, timeout=600):
    return subprocess.run(
        [sys.executable, str(ROOT / "recipes" / script), *args],
        capture_output=True, text=True, timeout=timeout, check=False,
    )


def test_demo_trains_evaluates_and_plots(tmp_path):
    result = run("demo.py", f"--workdir={tmp_path}", "--epochs=20")
    assert result.returncode == 0, result.stderr[-3000:]
    accuracy = float(re.search(r"top-1 accuracy ([0-9.]+)%", result.stdout).group(1))
    assert accuracy > 40  # it learns: chance is 10%
    assert (tmp_path / "run" / "training_curves.png").stat().st_size > 10_000
    trained = keras_vgg.vgg("A", weights=str(tmp_path / "run" / "final.weights.h5"),
                            width_multiplier=0.125, input_shape=(64, 64, 3), classes=10)
    assert trained.get_layer("predictions").units == 10
    history = (tmp_path / "run" / "history.csv").read_text().splitlines()
    assert len(history) == 21 and "images_per_second" in history[0]
    assert len(list((tmp_path / "images" / "train").glob("*/*.JPEG"))) == 1500
    assert any((tmp_path / "run" / "logs").rglob("events.out.tfevents.*"))
    assert (tmp_path / "exported" / "shapes" / "1" / "saved_model.pb").exists()
    dense = re.search(r"\| dense \(SavedModel\) \| 80 \| ([0-9.]+) \| [0-9.]+ \| 400 \|",
                      result.stdout)
    assert dense and float(dense.group(1)) < 60  # top-1 error, chance is 90%


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    root = tmp_path_factory.mktemp("images")
    sys.path.insert(0, str(ROOT / "recipes"))
    import demo_data

    demo_data.write(str(root), train_per_class=2, val_per_class=1)
    return root


def bad_flags(images, model_dir, *flags):
    return run("imagenet_train.py", f"--data=folder:{images}/train",
               f"--val_data=folder:{images}/val", f"--model_dir={model_dir}",
               "--width_multiplier=0.0625", "--crop_size=32", "--scale=40", *flags)


@pytest.mark.parametrize(
    "flags, message",
    [(["--config=F"], "unknown VGG config 'F'"),
     (["--crop_size=64", "--scale=48"], "--crop_size=64 is larger than the training scale"),
     (["--deterministic"], "--deterministic needs --seed"),
     (["--warm_start=/no/such.weights.h5"], "--warm_start=/no/such.weights.h5: no such file"),
     (["--scale=512,256"], "S_min <= S_max")],
)
def test_bad_flags_fail_before_training(images, tmp_path, flags, message):
    result = bad_flags(images, tmp_path, *flags)
    assert result.returncode != 0
    assert message in result.stderr
    assert not (tmp_path / "history.csv").exists()


def test_folder_data_needs_validation_data(images, tmp_path):
    result = run("imagenet_train.py", f"--data=folder:{images}/train", f"--model_dir={tmp_path}")
    assert result.returncode != 0 and "--val_data is needed" in result.stderr


def test_warm_start_from_another_architecture_fails_before_training(images, tmp_path):
    other = keras_vgg.vgg("B", width_multiplier=NARROW, input_shape=(32, 32, 3), classes=10)
    other.save_weights(tmp_path / "b.weights.h5")
    result = bad_flags(images, tmp_path / "run", "--config=D",
                       f"--warm_start={tmp_path / 'b.weights.h5'}")
    assert result.returncode != 0
    assert "not a config-A checkpoint" in result.stderr
    assert not (tmp_path / "run" / "history.csv").exists()


def run_workers(model_dir, images, *, workers=2, timeout=420):
    """Runs imagenet_train.py as `workers` processes of one TF_CONFIG cluster on localhost;
    returns each one's return code and output (stdout and stderr). A worker that fails
    stops the others (they would wait for it in a collective)."""
    sockets = [socket.socket() for _ in range(workers)]
    for probe in sockets:  # all open at once: distinct free ports
        probe.bind(("localhost", 0))
    cluster = {"worker": [f"localhost:{probe.getsockname()[1]}" for probe in sockets]}
    for probe in sockets:
        probe.close()
    command = [sys.executable, str(ROOT / "recipes" / "imagenet_train.py"), "--config=A",
               f"--data=folder:{images}/train", f"--val_data=folder:{images}/val",
               f"--model_dir={model_dir}", "--epochs=2", "--batch_size=4", "--scale=40",
               "--width_multiplier=0.0625", "--crop_size=32", "--init=glorot", "--seed=1"]
    logs = [Path(model_dir).parent / f"{Path(model_dir).name}.worker{i}.log"
            for i in range(workers)]
    processes = []
    for index, log in enumerate(logs):
        environment = {**os.environ, "CI": "1", "CUDA_VISIBLE_DEVICES": "", "TF_CONFIG":
                       json.dumps({"cluster": cluster,
                                   "task": {"type": "worker", "index": index}})}
        with open(log, "w") as output:
            processes.append(subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT,
                                              env=environment))
    deadline = time.monotonic() + timeout
    try:
        while any(p.poll() is None for p in processes) and time.monotonic() < deadline:
            if any(p.poll() not in (None, 0) for p in processes):
                time.sleep(5)  # let the others report the failure, then stop them
                break
            time.sleep(0.5)
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
            process.wait()
    return [(p.returncode, log.read_text()) for p, log in zip(processes, logs, strict=True)]


def test_two_workers_train_in_step_and_only_the_chief_writes_model_dir(images, tmp_path):
    import numpy as np

    model_dir = tmp_path / "run"
    results = run_workers(model_dir, images)
    for returncode, output in results:
        assert returncode == 0, output[-3000:]
    chief_output, other_output = (output for _, output in results)
    other = model_dir / "workers" / "worker_1"
    assert f" with 2 replica(s); this process writes to {model_dir}\n" in chief_output
    assert f" with 2 replica(s); this process writes to {other}\n" in other_output
    # 20 training images, global batch 4: each worker runs 5 steps of 2 images per epoch,
    # its own half of the data (unsharded, it would run 10).
    assert all("Epoch 2/2\n5/5 - " in output for output in (chief_output, other_output))
    with open(model_dir / "history.csv") as file:
        history = list(csv.DictReader(file))
    assert len(history) == 2 and all(np.isfinite(float(row["loss"])) for row in history)
    with open(other / "history.csv") as file:
        other_history = list(csv.DictReader(file))
    # Epoch metrics are read across all replicas, so both workers log the same ones...
    assert [row["val_accuracy"] for row in other_history] == [
        row["val_accuracy"] for row in history]
    # ...and the workers, each reading its own half of the data, end with the same weights:
    # their gradients were combined at every step.
    for mine, theirs in zip(final_weights(model_dir / "final.weights.h5"),
                            final_weights(other / "final.weights.h5"), strict=True):
        np.testing.assert_array_equal(mine, theirs)


def test_workers_resuming_from_different_epochs_stop_with_the_reason(images, tmp_path):
    model_dir = tmp_path / "run"
    backup = model_dir / "workers" / "worker_1" / "backup"
    backup.mkdir(parents=True)
    (backup / "training_metadata.json").write_text('{"epoch": 1, "batch": 0}')
    results = run_workers(model_dir, images, timeout=300)
    for returncode, output in results:
        assert returncode != 0
        assert "the workers disagree" in output
    assert "resumes from epoch 1" in results[1][1]
    assert not (model_dir / "history.csv").exists() or len(
        (model_dir / "history.csv").read_text().splitlines()) <= 1


def final_weights(path):
    import h5py
    import numpy as np

    arrays = []
    with h5py.File(path) as file:
        file.visititems(lambda name, item: arrays.append(np.asarray(item))
                        if isinstance(item, h5py.Dataset) else None)
    return arrays


def test_a_killed_run_resumes_to_the_same_final_weights(tmp_path):
    import signal

    import numpy as np

    sys.path.insert(0, str(ROOT / "recipes"))
    import demo_data

    demo_data.write(str(tmp_path / "images"), train_per_class=30, val_per_class=2)

    def command(model_dir):
        return [sys.executable, str(ROOT / "recipes" / "imagenet_train.py"), "--config=A",
                f"--data=folder:{tmp_path}/images/train",
                f"--val_data=folder:{tmp_path}/images/val", f"--model_dir={model_dir}",
                "--epochs=4", "--batch_size=16", "--width_multiplier=0.0625", "--scale=40",
                "--crop_size=32", "--init=glorot", "--seed=3", "--deterministic",
                # too small a rate to learn: accuracy plateaus and the rate drops
                "--learning_rate=1e-6", "--plateau_patience=1"]

    environment = {**os.environ, "CI": "1"}
    subprocess.run(command(tmp_path / "whole"), env=environment, check=True,
                   capture_output=True, timeout=600)
    with open(tmp_path / "whole" / "history.csv") as file:
        rates = [float(row["learning_rate"]) for row in csv.DictReader(file)]
    after_drop = [epoch for epoch, rate in enumerate(rates, 1) if rate < rates[0]]
    assert after_drop, f"the rate never dropped: {rates}"
    kill_in = f"Epoch {after_drop[0]}/4"  # an epoch that ran after a learning-rate drop
    killed = subprocess.Popen(command(tmp_path / "killed"), env=environment, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    for line in killed.stdout:
        if line.startswith(kill_in):
            time.sleep(0.3)
            killed.send_signal(signal.SIGKILL)
            break
    assert killed.wait(timeout=60) == -signal.SIGKILL
    assert (tmp_path / "killed" / "backup" / "training_metadata.json").exists()
    resumed = subprocess.run(command(tmp_path / "killed"), env=environment, text=True,
                             capture_output=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    epochs = [line for line in resumed.stdout.splitlines() if line.startswith("Epoch ")]
    assert epochs and epochs[0] in (kill_in, f"Epoch {after_drop[0] + 1}/4")  # not the start
    for whole, again in zip(final_weights(tmp_path / "whole" / "final.weights.h5"),
                            final_weights(tmp_path / "killed" / "final.weights.h5"),
                            strict=True):
        np.testing.assert_array_equal(whole, again)


def test_eval_recipe_prints_the_papers_table(images, tmp_path):
    model = keras_vgg.vgg("A", width_multiplier=NARROW, input_shape=(32, 32, 3), classes=10)
    model.save_weights(tmp_path / "a.weights.h5")
    result = run("imagenet_eval.py", "--config=A", f"--weights={tmp_path / 'a.weights.h5'}",
                 f"--data=folder:{images}/val", "--crop_size=32", "--width_multiplier=0.0625",
                 "--protocols=dense,multi_crop,combined", "--test_scales=32,48")
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [line for line in result.stdout.splitlines() if line.startswith("| ")]
    assert [row.split("|")[1].strip() for row in rows[1:]] == [
        "dense", "multi_crop", "combined"]
    assert all("| 32,48 |" in row and "| 10 |" in row for row in rows[1:])


def test_eval_recipe_rejects_a_test_scale_below_the_crop(images, tmp_path):
    model = keras_vgg.vgg("A", width_multiplier=NARROW, input_shape=(32, 32, 3), classes=10)
    model.save_weights(tmp_path / "a.weights.h5")
    result = run("imagenet_eval.py", "--config=A", f"--weights={tmp_path / 'a.weights.h5'}",
                 f"--data=folder:{images}/val", "--crop_size=32", "--width_multiplier=0.0625",
                 "--test_scales=24")
    assert result.returncode != 0 and "must be at least the crop 32" in result.stderr


def test_eval_recipe_reads_an_exported_saved_model(images, tmp_path):
    from keras_vgg import serving

    model = keras_vgg.vgg("A", width_multiplier=NARROW, input_shape=(32, 32, 3), classes=10)
    path = serving.export_saved_model(model, str(tmp_path), model_name="a", warmup=False,
                                      options=serving.ServingOptions(test_scale=48))
    result = run("imagenet_eval.py", f"--saved_model={path}", f"--data=folder:{images}/val")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "| dense (SavedModel) | 48 |" in result.stdout
    both = run("imagenet_eval.py", f"--saved_model={path}", "--weights=imagenet")
    assert both.returncode != 0 and "one of (weights, saved_model)" in both.stderr

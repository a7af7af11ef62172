import csv
import json
import math
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from conftest import ROOT, names, run_command, run_recipe, tmpfs
from image_files import imagenet_folder

from keras_vgg import runs
from keras_vgg.cli import evaluate, train
from keras_vgg.cli.train import EXIT_NOT_LEARNT as NOT_LEARNT


def run(script, *args, timeout=600):
    return subprocess.run(
        [sys.executable, str(ROOT / "recipes" / script), *args],
        capture_output=True, text=True, timeout=timeout, check=False,
    )


@pytest.fixture(scope="session")
def demo(tmp_path_factory):
    """`make demo`, run once: `(its work directory, the finished process, the number of
    training images it wrote)`; the localisation demo then writes a smaller set there."""
    workdir = tmp_path_factory.mktemp("demo")
    result = run("demo.py", f"--workdir={workdir}")
    return workdir, result, len(list((workdir / "images" / "train").glob("*/*.JPEG")))


@pytest.mark.slow
def test_demo_trains_from_the_defaults_evaluates_exports_and_fine_tunes(demo):
    """`make demo` as a newcomer runs it: the training command's defaults (batch, rate,
    schedule) but for the net's and images' size, then a fine-tuning onto new shapes from
    the defaults."""
    import demo_data

    tmp_path, result, train_images = demo
    assert result.returncode == 0, result.stderr[-3000:]
    summary = re.search(r"Validation \(centre crop, Q=63\) on 400 images after (\d+) epochs: "
                        r"loss ([0-9.]+), top-1 accuracy ([0-9.]+)%", result.stdout)
    assert summary, result.stdout[-3000:]
    epochs, loss, accuracy = int(summary[1]), float(summary[2]), float(summary[3])
    assert accuracy >= 90 and loss < 0.5 * math.log(10)  # chance: 10%, loss ln 10
    assert names(result.stdout, "batch 32", "learning rate 0.00125", "0.01 at batch 256, x 32/256")
    assert (tmp_path / "shapes" / "training_curves.png").stat().st_size > 10_000
    trained = runs.load(tmp_path / "shapes")
    assert trained.class_names == tuple(sorted(demo_data.CLASSES))
    assert trained.config.learning_rate is None and trained.config.batch_size == 32
    with open(tmp_path / "shapes" / "history.csv") as file:
        history = list(csv.DictReader(file))
    assert len(history) == epochs and "images_per_second" in history[0]
    losses = [float(row["loss"]) for row in history]
    assert all(math.isfinite(loss) for loss in losses) and min(losses) < 0.8 * losses[0]
    assert train_images == 1500
    assert any((tmp_path / "shapes" / "logs").rglob("events.out.tfevents.*"))
    exported = tmp_path / "exported" / "shapes" / "1"
    served = tf.saved_model.load(str(exported)).signatures["serving_default"](
        images=tf.zeros([1, 90, 120, 3], tf.uint8))
    assert set(served["top_k_names"].numpy()[0].astype(str)) <= set(trained.class_names)
    dense = re.search(r"\| dense \(SavedModel\) \| 63 \| ([0-9.]+) \| [0-9.]+ \| 400 \|",
                      result.stdout)
    assert dense and float(dense.group(1)) < 15  # top-1 error, chance is 90%
    lines = result.stdout.splitlines()
    tuned_line, fusion_line, transfer_line = (
        next(line for line in lines if line.startswith(start))
        for start in ("Fine-tuned onto", "Fusion (Sect. 4.4)", "Transfer (Appendix B)"))
    assert lines[-1] == transfer_line
    tuned = re.fullmatch(r"Fine-tuned onto 4 new shapes \(crescent, diamond, ellipse, grid\) "
                         r"from the defaults: top-1 accuracy ([0-9.]+)% on 80 held-out images "
                         r"after 15 epochs \(chance 25%\)\. Predicted: crescent_0000.JPEG: "
                         r"(\w+) \d+%; diamond_0000.JPEG: (\w+) \d+%", tuned_line)
    assert tuned and float(tuned[1]) > 90, tuned_line
    tuned_run = runs.load(tmp_path / "new_shapes")
    assert tuned_run.config.init_from == str(tmp_path / "shapes")
    # A new classifier: the paper's initial rate, not its fine-tuning rate for a net whose
    # every layer is loaded (the fusion net's, from the same classes).
    assert tuned_run.new_layers == ("predictions",)
    assert names(result.stdout, "batch 4", "learning rate 0.00015625", "(predictions)",
                 "0.01 at batch 256, x 4/256")
    assert runs.load(tmp_path / "shapes_s72").new_layers == ()
    assert names(result.stdout, "learning rate 0.000125", "fine-tuning rate",
                 "0.001 at batch 256, x 32/256")
    assert (tuned_run.config.config, tuned_run.config.crop_size) == ("A", 48)  # the run's
    fusion = re.fullmatch(r"Fusion \(Sect. 4.4\), top-1 error of dense evaluation on 400 "
                          r"held-out images: A/\[54;72\]/63 ([0-9.]+)%, A/72/72 ([0-9.]+)%, "
                          r"A/\[54;72\]/63 \+ A/72/72 ([0-9.]+)%", fusion_line)
    # The line's form only: fusing can be worse than either net for top-1 error; that the
    # fused posteriors are the nets' mean is tests/test_evaluation.py's.
    assert fusion, fusion_line
    transfer = re.fullmatch(r"Transfer \(Appendix B\): a linear SVM on config A's fc2 "
                            r"descriptors \(Q=63\) of the 4 new shapes: mean class recall "
                            r"([0-9.]+)% on 80 held-out images \(chance 25%\)", transfer_line)
    assert transfer and float(transfer[1]) > 75, transfer_line
    for noise in ("shuffle=True", "ran out of data", "Warning", "WARNING:absl", "Traceback"):
        assert noise not in result.stdout + result.stderr, noise


@pytest.mark.slow
def test_demo_localisation_reports_both_protocols_and_draws_boxes(demo, capsys):
    """`make demo-localisation` after `make demo`, as the README has it: box nets from the
    demo's classification run."""
    tmp_path, _, _ = demo
    status, printed = run_recipe("demo_localisation", f"--workdir={tmp_path}",
                                 "--train_per_class=12", "--val_per_class=4",
                                 "--localisation_epochs=2")  # in this process
    assert status == 0, capsys.readouterr().err[-3000:]
    assert "No finished classification run" not in printed  # the demo's was used
    line = printed.splitlines()[-1]
    errors = re.fullmatch(
        r"Localisation \(Appendix A.2\), per-class regression, localisation error \(centre "
        r"crop, ground-truth class, Q=63\) on 40 images: top-1 ([0-9.]+)%; localisation "
        r"error \(full image, dense, merged, Q=63\) on 40 images: top-1 ([0-9.]+)%, top-5 "
        r"([0-9.]+)%\. Boxes drawn: (.*)", line)
    assert errors, line
    assert float(errors[2]) >= float(errors[3])  # five guesses do no worse than one
    assert Path(errors[4]).stat().st_size > 10_000
    assert runs.load(tmp_path / "localisation").config.init_from == str(tmp_path / "shapes")
    boxed = f"?boxes={tmp_path}/images/boxes/val"
    # The commands on its runs, in this process as the installed commands run them.
    capsys.readouterr()
    status = run_command(evaluate, f"--model_dir={tmp_path}/localisation,"
                         f"{tmp_path}/localisation", f"--data=folder:{tmp_path}/images/val{boxed}")
    report = capsys.readouterr()
    assert status == 0, report.err[-3000:]
    lines = report.out.strip().splitlines()[-3:]
    assert all(f"localisation error (centre crop, ground-truth class, Q=63) on 40 images: "
               f"top-1 {errors[1]}%" in line for line in lines[:2])
    # One net's boxes merged with a copy of themselves: the same guesses as the demo's.
    assert lines[2].endswith(f"(boxes rated by {tmp_path}/shapes): localisation error (full "
                             f"image, dense, merged, Q=63) on 40 images: top-1 {errors[2]}%, "
                             f"top-5 {errors[3]}%")
    # The network, width, crop and scale come from the classification run.
    status = run_command(
        train, "--task=localisation", "--box_regression=scr",
        f"--init_from={tmp_path}/shapes", "--epochs=1", "--batch_size=16",
        f"--data=folder:{tmp_path}/images/train?boxes={tmp_path}/images/boxes/train",
        f"--val_data=folder:{tmp_path}/images/val{boxed}", f"--model_dir={tmp_path}/scr")
    cli = capsys.readouterr()
    # One epoch of 12 images a class puts no box right yet: the run says so (status 2).
    assert status == NOT_LEARNT, cli.err[-3000:]
    assert names(cli.err, "no validation box", "IoU > 0.5"), cli.err[-3000:]
    assert names(cli.out, "localisation rate", "0.001 at batch 256, x 16/256")
    assert runs.load(tmp_path / "scr").build_model().output_shape == (None, 4)
    status = run_command(train, "--task=localisation", f"--init_from={tmp_path}/shapes",
                         f"--data=folder:{tmp_path}/images/train",
                         f"--val_data=folder:{tmp_path}/images/val",
                         f"--model_dir={tmp_path}/x")
    assert status != 0 and "localisation needs boxes" in capsys.readouterr().err


@pytest.mark.full_size
def test_config_a_at_full_width_trains_from_the_recipe_defaults(tmp_path, capsys):
    """The README's command with no --init and no --learning_rate, on real photographs:
    the paper's config A, 224 crops of S = 256, Glorot, 0.01 x 4/256."""
    synsets = ["n01440764", "n01443537"]
    imagenet_folder(str(tmp_path / "train"), synsets, per_class=2)
    imagenet_folder(str(tmp_path / "val"), synsets, per_class=1)
    status = run_command(train, "--config=A", f"--data=folder:{tmp_path}/train",
                         f"--val_data=folder:{tmp_path}/val", f"--model_dir={tmp_path}/run",
                         "--batch_size=4", "--epochs=2")
    result = capsys.readouterr()
    assert status == 0, result.err[-3000:]
    assert names(result.out, "learning rate 0.00015625", "0.01 at batch 256, x 4/256")
    with open(tmp_path / "run" / "history.csv") as file:
        losses = [float(row["loss"]) for row in csv.DictReader(file)]
    assert len(losses) == 2 and all(math.isfinite(loss) for loss in losses)
    assert max(losses) < 2 * losses[0]  # not exploding
    summary = re.search(r"on 2 images after 2 epochs: loss ([0-9.]+), top-1 accuracy",
                        result.out)
    assert summary and float(summary[1]) < 3 * math.log(1000), result.out[-2000:]


def worker_flags(model_dir, images) -> list[str]:
    """The flags of `run_workers`' training command."""
    return ["--config=A", f"--data=folder:{images}/train", f"--val_data=folder:{images}/val",
            f"--model_dir={model_dir}", "--epochs=2", "--batch_size=4", "--scale=40",
            "--width_multiplier=0.0625", "--crop_size=32", "--seed=1"]


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
    command = [sys.executable, str(ROOT / "recipes" / "imagenet_train.py"),
               *worker_flags(model_dir, images)]
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
                # One failed: the others have 5 s to report it and end before they are stopped.
                deadline = min(deadline, time.monotonic() + 5)
            time.sleep(0.1)
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
            process.wait()
    return [(p.returncode, log.read_text()) for p, log in zip(processes, logs, strict=True)]


@pytest.mark.slow
def test_two_workers_train_in_step_and_only_the_chief_writes_model_dir(demo_images, tmp_path):
    model_dir = tmp_path / "run"
    results = run_workers(model_dir, demo_images)
    for returncode, output in results:
        # Two epochs of 2 images a class teach the net nothing, which it says (status 2).
        assert returncode == NOT_LEARNT and "the run did not learn" in output, output[-3000:]
    chief_output, other_output = (output for _, output in results)
    other = model_dir / "workers" / "worker_1"
    for output, directory in ((chief_output, model_dir), (other_output, other)):
        assert "under MultiWorkerMirroredStrategy with 2 replica(s)" in output
        assert f"; writing {directory}\n" in output
        assert "Q=40) on 10 images after 2 epochs: loss" in output  # both workers' halves
    assert runs.load(model_dir).config == runs.load(other).config
    with open(model_dir / "history.csv") as file:
        history = list(csv.DictReader(file))
    assert len(history) == 2 and all(np.isfinite(float(row["loss"])) for row in history)
    with open(other / "history.csv") as file:
        other_history = list(csv.DictReader(file))
    # 20 training images, global batch 4: each worker runs 5 steps of 2 images per epoch,
    # its own half of the data (unsharded, each would run 10 steps).
    for rows in (history, other_history):
        assert [float(row["training_steps"]) for row in rows] == [5, 5]
    # Epoch metrics are read across all replicas, so both workers log the same ones...
    assert [row["val_accuracy"] for row in other_history] == [
        row["val_accuracy"] for row in history]
    # ...and the workers, each reading its own half of the data, end with the same weights:
    # their gradients were combined at every step.
    for mine, theirs in zip(final_weights(model_dir / "final.weights.h5"),
                            final_weights(other / "final.weights.h5"), strict=True):
        np.testing.assert_array_equal(mine, theirs)


@pytest.mark.slow
def test_workers_resuming_from_different_epochs_stop_with_the_reason(demo_images, tmp_path):
    from absl import flags

    import demo_data
    from keras_vgg import checkpoints
    from keras_vgg.cli import train

    model_dir = tmp_path / "run"
    # Worker 1 holds the state and settings of a checkpoint of epoch 1; the chief none.
    checkpoint = model_dir / "workers" / "worker_1" / checkpoints.CHECKPOINT_DIR / "epoch-1"
    checkpoint.mkdir(parents=True)
    checkpoints.RunState(epoch=1).save(str(checkpoint / checkpoints.STATE_FILE))

    values = flags.FlagValues()
    train.define_flags(values)
    values(["train", *worker_flags(model_dir, demo_images)])
    runs.Run.of(train.config_from_flags(values), demo_data.CLASSES).save(str(checkpoint))
    results = run_workers(model_dir, demo_images, timeout=300)
    for returncode, output in results:
        assert returncode != 0
        assert "the workers disagree" in output
    assert "resumes from epoch 1" in results[1][1]
    assert not (model_dir / "history.csv").exists() or len(
        (model_dir / "history.csv").read_text().splitlines()) <= 1


def final_weights(path):
    import h5py

    arrays = []
    with h5py.File(path) as file:
        file.visititems(lambda name, item: arrays.append(np.asarray(item))
                        if isinstance(item, h5py.Dataset) else None)
    return arrays


@pytest.mark.slow
def test_a_killed_run_resumes_to_the_same_final_weights(tmp_path, monkeypatch, capsys):
    """The run killed (SIGKILL) in a process of its own after a learning-rate drop; the
    same command, run whole and resumed here, ends with the same weights to the bit."""
    import demo_data
    from keras_vgg import callbacks, checkpoints

    demo_data.write(str(tmp_path / "images"), train_per_class=16, val_per_class=2)

    def arguments(model_dir):
        # Too small a rate to learn: accuracy plateaus, and the rate drops each epoch, the
        # schedule's wait for a net to beat chance lifted (tests/test_callbacks.py tests it).
        return ["--config=A", f"--data=folder:{tmp_path}/images/train",
                f"--val_data=folder:{tmp_path}/images/val", f"--model_dir={model_dir}",
                "--epochs=4", "--batch_size=16", "--width_multiplier=0.0625",
                "--scale=40", "--crop_size=32", "--seed=3", "--deterministic",
                "--learning_rate=1e-6", "--plateau_patience=1", "--plateau_min_steps=0"]

    monkeypatch.setattr(callbacks, "above_chance", lambda *_: True)
    assert run_command(train, *arguments(tmp_path / "whole")) == 0, capsys.readouterr().err
    with open(tmp_path / "whole" / "history.csv") as file:
        rates = [float(row["learning_rate"]) for row in csv.DictReader(file)]
    after_drop = [epoch for epoch, rate in enumerate(rates, 1) if rate < rates[0]]
    assert after_drop, f"the rate never dropped: {rates}"
    kill_in = f"Epoch {after_drop[0]}/4"  # an epoch that ran after a learning-rate drop
    script = ("import runpy, sys; from keras_vgg import callbacks; "
              "callbacks.above_chance = lambda *_: True; "
              f"sys.argv = ['imagenet_train.py', *{arguments(tmp_path / 'killed')!r}]; "
              f"runpy.run_path({str(ROOT / 'recipes' / 'imagenet_train.py')!r}, "
              "run_name='__main__')")
    killed = subprocess.Popen([sys.executable, "-c", script], env={**os.environ, "CI": "1"},
                              text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    for line in killed.stdout:
        if line.startswith(kill_in):
            time.sleep(0.3)
            killed.send_signal(signal.SIGKILL)
            break
    assert killed.wait(timeout=60) == -signal.SIGKILL
    assert checkpoints.saved_epoch(str(tmp_path / "killed")) >= 1
    capsys.readouterr()
    assert run_command(train, *arguments(tmp_path / "killed")) == 0, capsys.readouterr().err
    resumed = capsys.readouterr().out
    assert "Resuming from the end of epoch" in resumed
    epochs = [line for line in resumed.splitlines() if line.startswith("Epoch ")]
    assert epochs and epochs[0] in (kill_in, f"Epoch {after_drop[0] + 1}/4")  # not the start
    for whole, again in zip(final_weights(tmp_path / "whole" / "final.weights.h5"),
                            final_weights(tmp_path / "killed" / "final.weights.h5"),
                            strict=True):
        np.testing.assert_array_equal(whole, again)


@pytest.mark.slow
def test_a_full_disk_stops_the_run_with_its_files_intact_and_it_resumes(tmp_path, capsys):
    """--model_dir on a small tmpfs that fills up after epoch 1: the run exits with what to
    do (no crash), every file it wrote still loads, and once there is space the same
    command resumes."""
    import demo_data
    import keras_vgg
    from keras_vgg import checkpoints, runs

    demo_data.write(str(tmp_path / "images"), train_per_class=4, val_per_class=1)
    with tmpfs(tmp_path / "disk", "size=16m") as disk:
        command = [sys.executable, str(ROOT / "recipes" / "imagenet_train.py"), "--config=A",
                   f"--data=folder:{tmp_path}/images/train",
                   f"--val_data=folder:{tmp_path}/images/val", f"--model_dir={disk}/run",
                   "--epochs=3", "--batch_size=8", "--width_multiplier=0.0625", "--scale=40",
                   "--crop_size=32", "--seed=3"]
        environment = {**os.environ, "CI": "1"}
        training = subprocess.Popen(command, env=environment, text=True,
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        output = []
        for line in training.stdout:
            output.append(line)
            if line.startswith("Epoch 2/3"):  # epoch 1 is written: fill the disk
                with open(disk / "ballast", "wb") as ballast:
                    with pytest.raises(OSError, match="No space left"):
                        while True:
                            ballast.write(bytes(1 << 16))
                            ballast.flush()
        assert training.wait(timeout=120) == 1, "".join(output)
        assert names("".join(output), "keras-vgg-train: ", "no space left", "free some space",
                     "same command"), "".join(output)
        run = runs.load(disk / "run")
        assert checkpoints.saved_epoch(str(disk / "run")) == 1
        keras_vgg.load_weights(run.build_model(weights=False), os.path.join(
            checkpoints.latest(str(disk / "run")), checkpoints.WEIGHTS_FILE))
        os.remove(disk / "ballast")
        capsys.readouterr()
        status = run_command(train, *command[2:])  # the same command, in this process
        resumed = capsys.readouterr()
        # Three epochs of 4 images a class teach nothing, which it says (status 2).
        assert status == NOT_LEARNT, resumed.out + resumed.err
        assert "Resuming from the end of epoch 1" in resumed.out
        assert "after 3 epochs" in resumed.out


@pytest.mark.slow
@pytest.mark.parametrize("signum, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_an_interrupted_run_says_what_is_saved_and_resumes(tmp_path, capsys, signum,
                                                           status):
    """Ctrl-C, or a scheduler's SIGTERM, after the first epoch: one line, no traceback."""
    import demo_data

    demo_data.write(str(tmp_path / "images"), train_per_class=8, val_per_class=1)
    command = [sys.executable, str(ROOT / "recipes" / "imagenet_train.py"), "--config=A",
               f"--data=folder:{tmp_path}/images/train",
               f"--val_data=folder:{tmp_path}/images/val", f"--model_dir={tmp_path}/run",
               "--epochs=3", "--batch_size=4", "--width_multiplier=0.0625", "--scale=40",
               "--crop_size=32", "--seed=3", "--learning_rate=1e-3"]
    # Keras prints "Epoch 2/3" when epoch 2 begins, after epoch 1's checkpoint: the signal
    # lands in epoch 2, which takes far longer than the signal's delivery.
    training = subprocess.Popen(command, env={**os.environ, "CI": "1", "PYTHONUNBUFFERED": "1"},
                                text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    for line in training.stdout:
        if line.startswith("Epoch 2/3"):
            training.send_signal(signum)
            break
    assert training.wait(timeout=120) == status
    errors = training.stderr.read()
    assert "Traceback" not in errors, errors
    last_line = errors.strip().splitlines()[-1]
    assert last_line.startswith("keras-vgg-train: ")
    assert names(last_line, "interrupted", "epoch 1", f"{tmp_path}/run", "same command"), errors
    if signum == signal.SIGTERM:
        status = run_command(train, *command[2:])  # the same command, in this process
        resumed = capsys.readouterr()
        assert "Resuming from the end of epoch 1" in resumed.out
        assert "after 3 epochs" in resumed.out
        # Three epochs of 8 images a class teach this net nothing: it says so (status 2).
        assert status == NOT_LEARNT and "the run did not learn" in resumed.err

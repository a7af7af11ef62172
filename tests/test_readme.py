"""The README's quick start, run as written on the demo's images and scikit-image's
photographs, in-process as the installed commands run.

Two things differ from a user's machine, and only those: Keras' ImageNet file is a VGG16 of
random weights in the official layout, served from a file URL with its own MD5 (no network
here; the real URL and hash are `keras_vgg.weights`'), and the training gets `--epochs=1`
(the paper's 74 epochs of VGG16 on a CPU would take an hour). The served model's REST
endpoint is the stand-in of `serving_emulator`, as TF-Serving is not installable here.
"""

import contextlib
import dataclasses
import hashlib
import json
import os
import re
import shlex
import subprocess
import sys
import time
import urllib.request

import keras
import pytest
import tensorflow as tf
from conftest import ROOT, run_command
from image_files import encode, photo

from keras_vgg import weights
from keras_vgg.cli import evaluate, export, predict, train

COMMANDS = {"keras-vgg-predict": predict, "keras-vgg-train": train,
            "keras-vgg-eval": evaluate, "keras-vgg-export": export}


def quick_start() -> tuple[list[str], str]:
    """The quick start's shell commands (comments and the install left out) and its
    Python block."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Quick start"):text.index("## Reproducing the paper")]
    (shell,) = re.findall(r"```bash\n(.*?)```", section, re.DOTALL)
    (python,) = re.findall(r"```python\n(.*?)```", section, re.DOTALL)
    commands = [line for line in shell.splitlines() if line and not line.startswith("#")]
    return commands, python


def test_the_quick_start_names_only_commands_the_package_installs():
    commands, _ = quick_start()
    programs = [shlex.split(line)[0] for line in commands]
    assert set(programs) == {*COMMANDS, "tensorboard", "docker", "curl"}
    assert programs.count("keras-vgg-train") == 1


@pytest.fixture
def quick_start_folder(tmp_path, monkeypatch, demo_images):
    """The user's folder: photos/, my_images/{train,val} (two of the demo's classes), and
    Keras' ImageNet VGG16 where `keras_vgg.weights` fetches it."""
    import shutil

    from test_weights import save_official_layout

    served = save_official_layout(keras.applications.VGG16(weights=None),
                                  tmp_path / "vgg16.h5")
    md5 = hashlib.md5(served.read_bytes()).hexdigest()
    table = dict(weights.IMAGENET_WEIGHTS)
    published = table[("D", True)]
    table[("D", True)] = dataclasses.replace(published, origin=served.as_uri(), md5=md5)
    monkeypatch.setattr(weights, "IMAGENET_WEIGHTS", table)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    work = tmp_path / "user"
    (work / "photos").mkdir(parents=True)
    for name, image in (("cat", "chelsea"), ("astronaut", "astronaut"), ("mug", "coffee")):
        (work / "photos" / f"{name}.jpg").write_bytes(encode(photo(image)))
    for split in ("train", "val"):
        for name in ("circle", "square"):
            shutil.copytree(demo_images / split / name, work / "my_images" / split / name)
    monkeypatch.chdir(work)
    return work


@pytest.mark.full_size
def test_the_quick_start_runs_as_written(quick_start_folder, capsys):
    commands, python = quick_start()
    printed = {}
    with contextlib.ExitStack() as running:
        for line in commands:
            run_quick_start_line(line, quick_start_folder, printed, running, capsys)
        tensorboard_shows_the_scalars(printed["tensorboard"])
    # The predictions: ImageNet's names for the pretrained net, the two classes after.
    imagenet, mine = printed["keras-vgg-predict"]
    assert len(imagenet.strip().splitlines()) == 3 and "photos/cat.jpg: " in imagenet
    assert len(re.findall(r"\w+ [0-9.]+%", imagenet.splitlines()[0])) == 5  # ImageNet's top 5
    assert all(name in ("circle", "square") for line in mine.strip().splitlines()
               for name in re.findall(r"(\w+) [0-9.]+%", line))
    assert "| dense | 224,256,288 |" in printed["keras-vgg-eval"][0]
    exec(compile(python, "README.md", "exec"), {})
    shown = capsys.readouterr().out
    assert "[[('n0" in shown  # decode_predictions: (synset, name, score)
    assert re.search(r"^photos/cat.jpg \(\('(circle|square)', '(circle|square)', 0\.\d+",
                     shown, re.MULTILINE), shown


def run_quick_start_line(line, folder, printed, running, capsys):
    """Runs a line of the quick start's shell block in `folder`: a package command in this
    process (what it printed goes to `printed`), the others against their stand-ins.
    TensorBoard keeps running (its port in `printed`) until `running` closes."""
    from serving_emulator import RestServer

    words = shlex.split(line)
    if words[0] in COMMANDS:
        arguments = [path for word in words[1:] for path in (
            sorted(str(p) for p in folder.glob(word)) if "*" in word
            else [word])]
        if words[0] == "keras-vgg-train":
            arguments.append("--epochs=1")
        status = run_command(COMMANDS[words[0]], *arguments)
        output = capsys.readouterr()
        assert status == 0, (line, output.err[-2000:])
        printed[words[0]] = printed.get(words[0], []) + [output.out]
    elif words[0] == "tensorboard":  # it starts while the next lines run, as a user's
        server, printed["tensorboard"] = start_tensorboard(words)
        running.callback(stop, server)
    elif words[0] == "docker":
        serve = next(out for out in printed["keras-vgg-export"][-1].splitlines()
                     if out.strip().startswith("docker run"))
        assert serve.strip() == line.replace('"$PWD', str(folder)).replace(
            ':/models"', ":/models")
    else:  # curl, against the stand-in at the address docker would publish
        ask = printed["keras-vgg-export"][-1].strip().splitlines()[-1].strip()
        assert ask == line
        version = folder / "exported" / "mine" / "1"
        server = RestServer("mine", tf.saved_model.load(str(version)).signatures)
        try:
            answer = subprocess.run(
                ["bash", "-c", line.replace("localhost:8501", server.address)
                 .replace("IMAGE.jpg", "photos/cat.jpg")],
                capture_output=True, text=True, check=True, timeout=120).stdout
        finally:
            server.close()
        assert '"top_k_names": ["' in answer and '"probabilities"' in answer


def start_tensorboard(words) -> tuple[subprocess.Popen, int]:
    """Starts the command on a free port: the process and its port."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([os.path.join(os.path.dirname(sys.executable), words[0]),
                               *words[1:], "--host=127.0.0.1", f"--port={port}"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return server, port


def tensorboard_shows_the_scalars(port: int) -> None:
    """Waits until the TensorBoard at `port` serves the run's scalars, and checks them."""
    tags = ""
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and "epoch_loss" not in tags:
        try:
            with urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/data/plugin/scalars/tags") as reply:
                tags = reply.read().decode()
        except OSError:
            pass
        time.sleep(0.2)
    runs = json.loads(tags)
    assert {"epoch_loss", "epoch_learning_rate", "epoch_images_per_second"} <= set(
        runs["train"]) and "epoch_accuracy" in runs["validation"], tags


def stop(server: subprocess.Popen) -> None:
    server.terminate()
    server.wait(timeout=30)

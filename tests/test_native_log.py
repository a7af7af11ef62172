import os
import subprocess
import sys

import pytest
from conftest import ROOT

from keras_vgg import native_log

ONEDNN = (b"I0000 00:00:1796544010.377490    2071 port.cc:153] oneDNN custom operations are on. "
          b"You may see slightly different numerical results.\n")
WARNING = b"W1204 10:01:02.123456   77 cuda_dnn.cc:8579] Unable to register cuDNN factory\n"
ERROR = b"E1204 10:01:02.123456   77 cuda_driver.cc:266] failed call to cuInit\n"
FATAL = b"F1204 10:01:02.123456   77 tensor.cc:12] Check failed: dims() == 2\n"
PREAMBLE = native_log.PREAMBLE + b"\n"
OTHER = [b"Traceback (most recent call last):\n", b"I0000 is not a log line\n",
         b"UserWarning: a Python warning\n"]


@pytest.mark.parametrize("level, hidden", [
    (0, []),
    (1, [PREAMBLE, ONEDNN]),
    (2, [PREAMBLE, ONEDNN, WARNING]),
    (3, [PREAMBLE, ONEDNN, WARNING, ERROR]),
])
def test_the_level_hides_absl_lines_below_it_and_nothing_else(level, hidden):
    lines = [PREAMBLE, ONEDNN, WARNING, ERROR, FATAL, *OTHER]
    assert [line for line in lines if native_log.is_hidden(line, level)] == hidden


@pytest.mark.parametrize("level", ["1", "2"])
def test_the_block_writes_back_all_but_the_hidden_lines_in_order(level, monkeypatch, capfd):
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", level)
    monkeypatch.setattr(native_log, "hidden", [])
    capfd.readouterr()
    with native_log.start_up_lines_hidden():
        for line in (PREAMBLE, ONEDNN, OTHER[0], WARNING, OTHER[1]):
            os.write(2, line)  # as TensorFlow's C++ writes
        print("from Python", file=sys.__stderr__, flush=True)  # pytest's sys.stderr is its own
    print("after it", file=sys.__stderr__, flush=True)
    passed = [OTHER[0], *([WARNING] if level == "1" else []), OTHER[1]]
    assert capfd.readouterr().err == b"".join([*passed, b"from Python\n", b"after it\n"]).decode()
    assert native_log.hidden == [line.decode().rstrip("\n") for line in (
        PREAMBLE, ONEDNN, *([] if level == "1" else [WARNING]))]


def test_level_0_shows_everything(monkeypatch, capfd):
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "0")
    capfd.readouterr()
    with native_log.start_up_lines_hidden():
        os.write(2, PREAMBLE + ONEDNN)
    assert capfd.readouterr().err == (PREAMBLE + ONEDNN).decode()


@pytest.mark.slow
def test_importing_keras_vgg_loads_tensorflow_without_a_line_on_stderr():
    """In a fresh process, at the default level. TensorFlow still writes its start-up lines
    past the level: when it stops, `keras_vgg.native_log` can go."""
    environment = {name: value for name, value in os.environ.items()
                   if name != "TF_CPP_MIN_LOG_LEVEL"}
    result = subprocess.run(
        [sys.executable, "-c", "import keras_vgg, keras; from keras_vgg import native_log; "
         "print(keras.backend.backend()); print(*native_log.hidden, sep='\\n')"],
        capture_output=True, text=True, timeout=300, check=False, cwd=str(ROOT),
        env={**environment, "KERAS_BACKEND": "tensorflow"})
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    backend, *hidden = result.stdout.splitlines()
    assert backend == "tensorflow"
    assert native_log.PREAMBLE.decode() in hidden, "TensorFlow honours the level now"

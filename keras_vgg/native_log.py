"""TensorFlow's start-up lines on stderr, at the level `TF_CPP_MIN_LOG_LEVEL` asks for.

TensorFlow 2.21 logs through absl before absl's logging is initialised, so the level does
not reach what its C++ writes while it loads: twice each, "WARNING: All log messages before
absl::InitializeLog() is called are written to STDERR" and oneDNN's notice ("I0000 ...
port.cc:153] oneDNN custom operations are on ..."). `start_up_lines_hidden()` holds the
process's stderr (file descriptor 2) while its block runs, and writes back, as they come,
all the lines but absl's lines below the level (1 hides INFO, 2 WARNING too, 3 ERROR too;
FATAL always shows) and that preamble. The lines it hid are in `hidden`.

A thread of this process does the writing back, so a process that aborts inside the block
may lose the last lines it wrote (TensorFlow's FATAL line before an abort as it loads).
`TF_CPP_MIN_LOG_LEVEL=0` turns all of this off and shows every line.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import threading
from collections.abc import Iterator

PREAMBLE = b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
# absl's line: severity, MMDD, time, thread id, file:line] message (the time is odd before
# absl is initialised: "I0000 00:00:1796544010.377490").
_ABSL_LINE = re.compile(rb"([IWEF])\d{4} [\d:.]+ +\d+ [^\s\]]+:\d+\] ")
_HIDEABLE = "IWE"  # the severities TF_CPP_MIN_LOG_LEVEL 1, 2, 3 hide in turn

hidden: list[str] = []


def level() -> int:
    """TF_CPP_MIN_LOG_LEVEL as TensorFlow reads it: 0 (everything) when unset or not a
    number."""
    try:
        return int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0"))
    except ValueError:
        return 0


def is_hidden(line: bytes, min_level: int) -> bool:
    """Whether TensorFlow's level `min_level` hides `line` (one line of stderr)."""
    if min_level < 1:
        return False
    if line.rstrip(b"\r\n") == PREAMBLE:
        return True
    absl = _ABSL_LINE.match(line)
    return bool(absl) and absl.group(1).decode() in _HIDEABLE[:min_level]


@contextlib.contextmanager
def start_up_lines_hidden() -> Iterator[None]:
    """Runs the block with stderr's lines below `level()` hidden (see the module's
    docstring); everything else the block writes to stderr, from Python or C++, passes."""
    min_level = level()
    if min_level < 1:
        yield
        return
    try:
        sys.stderr.flush()
        stderr = os.dup(2)
    except (AttributeError, OSError, ValueError):  # no stderr to hold
        yield
        return
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)
    forwarder = threading.Thread(target=_forward, args=(read_end, stderr, min_level),
                                 name="keras_vgg.native_log", daemon=True)
    forwarder.start()
    try:
        yield
    finally:
        with contextlib.suppress(AttributeError, OSError, ValueError):
            sys.stderr.flush()
        os.dup2(stderr, 2)  # the pipe's last writer goes: the forwarder reads to its end
        forwarder.join(timeout=10)
        if not forwarder.is_alive():  # else a child process still holds the pipe
            os.close(stderr)


def _forward(read_end: int, stderr: int, min_level: int) -> None:
    """Copies the pipe's lines to `stderr` (a descriptor), but the hidden ones."""
    with open(read_end, "rb") as pipe:
        for line in pipe:
            if is_hidden(line, min_level):
                hidden.append(line.decode(errors="replace").rstrip("\r\n"))
                continue
            view = memoryview(line)
            while view:
                view = view[os.write(stderr, view):]

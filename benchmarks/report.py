"""Writes measured figures into BENCHMARKS.md, one section per benchmark, with the machine."""

from __future__ import annotations

import datetime
import os
import platform
import re

import keras

BENCHMARKS_MD = os.path.join(os.path.dirname(os.path.dirname(__file__)), "BENCHMARKS.md")
HEADER = (
    "# Benchmarks\n\n"
    "Every figure below is written by `make bench` (`python -m benchmarks.<name>`); nothing "
    "here is typed by hand. Re-running a benchmark replaces its section.\n"
)


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf8") as file:
            for line in file:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def machine() -> str:
    """The CPU, and the framework the benchmark ran on (TensorFlow, or Keras' backend)."""
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        framework = f"TensorFlow {tf.__version__}"
    else:
        framework = f"Keras {keras.__version__} on {keras.backend.backend()}"
    return (
        f"{cpu_model()}, {os.cpu_count()} cores visible, {framework}, "
        f"Python {platform.python_version()}"
    )


def write_section(name: str, command: str, body: str) -> None:
    """Replaces (or appends) the section `name` of BENCHMARKS.md."""
    text = open(BENCHMARKS_MD, encoding="utf8").read() if os.path.exists(BENCHMARKS_MD) else HEADER
    today = datetime.date.today().isoformat()
    section = (
        f"<!-- {name}:start -->\n## {name}\n\n"
        f"Machine: {machine()}. Date: {today}. Command: `{command}`.\n\n{body.strip()}\n"
        f"<!-- {name}:end -->\n"
    )
    pattern = re.compile(rf"<!-- {re.escape(name)}:start -->.*?<!-- {re.escape(name)}:end -->\n",
                         re.DOTALL)
    text = pattern.sub(lambda _: section, text) if pattern.search(text) else f"{text}\n{section}"
    with open(BENCHMARKS_MD, "w", encoding="utf8") as file:
        file.write(text)

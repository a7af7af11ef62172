"""Each benchmark runs end to end in its --quick mode (tiny inputs; no speed is asserted,
BENCHMARKS.md is left alone)."""

import subprocess
import sys
from pathlib import Path

import pytest
import tensorflow as tf

ROOT = Path(__file__).resolve().parents[1]
GPU = bool(tf.config.list_physical_devices("GPU"))


@pytest.mark.parametrize("name, expected", [
    ("pipeline", "| ours |"),
    ("inference", "| keras_vgg mixed_bfloat16 |"),
    ("training", "| keras_vgg |"),
    ("initialisation", "| E | glorot |"),
    ("distributed", "| MirroredStrategy, 4 CPU device(s) |"),
    ("gpu_training", "no GPU is visible" if not GPU else "| mixed_bfloat16, XLA on |"),
    ("dense_eval", "| multi-crop, Q=256,384,512, 150 crops |"),
    ("serving", "| SavedModel |"),
])
def test_benchmark_runs_quick(name, expected, tmp_path):
    before = (ROOT / "BENCHMARKS.md").read_text()
    result = subprocess.run(
        [sys.executable, "-m", f"benchmarks.{name}", "--quick", f"--demo={tmp_path}"
         if name == "dense_eval" else "--quick"],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    assert expected in result.stdout
    assert (ROOT / "BENCHMARKS.md").read_text() == before

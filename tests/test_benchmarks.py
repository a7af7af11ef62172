"""Each benchmark runs end to end in its --quick mode (tiny inputs; no speed is asserted,
BENCHMARKS.md is left alone)."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name, expected", [
    ("pipeline", "| ours |"),
    ("inference", "| keras_vgg mixed_bfloat16 |"),
    ("training", "| keras_vgg |"),
    ("initialisation", "| E | glorot |"),
    ("distributed", "| MirroredStrategy, 4 CPU device(s) |"),
    ("dense_eval", "| multi-crop, Q=256,384,512, 150 crops |"),
    ("serving", "| SavedModel |"),
    ("small_data", "| freeze_convs |"),
])
@pytest.mark.slow
def test_benchmark_runs_quick(name, expected, tmp_path):
    before = (ROOT / "BENCHMARKS.md").read_text()
    result = subprocess.run(
        [sys.executable, "-m", f"benchmarks.{name}", "--quick", f"--demo={tmp_path}"
         if name == "dense_eval" else "--quick"],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    assert expected in result.stdout
    assert (ROOT / "BENCHMARKS.md").read_text() == before


def run_without_tensorflow(module, *flags):
    """`python -m module flags` with TensorFlow made unimportable, as on the GPU machines."""
    script = ("import runpy, sys; sys.modules['tensorflow'] = None; "
              f"sys.argv = [{module!r}, *{list(flags)!r}]; "
              f"runpy.run_module({module!r}, run_name='__main__')")
    return subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                          text=True, timeout=600, check=False)


@pytest.mark.slow
def test_the_gpu_benchmark_runs_on_jax_without_tensorflow():
    before = (ROOT / "BENCHMARKS.md").read_text()
    quick = run_without_tensorflow("benchmarks.gpu_training", "--quick")
    assert quick.returncode == 0, quick.stderr[-3000:]
    assert "| mixed_bfloat16 | 2 |" in quick.stdout
    assert "libtpu" not in quick.stderr  # JAX's plugin search stays quiet
    full = run_without_tensorflow("benchmarks.gpu_training")
    assert full.returncode == 0, full.stderr[-3000:]
    assert "Not measured: JAX sees no GPU on this machine" in full.stdout
    assert (ROOT / "BENCHMARKS.md").read_text() == before


"""Each benchmark runs end to end in its --quick mode (tiny inputs; no speed is asserted,
BENCHMARKS.md is left alone), as `python -m benchmarks.<name> --quick` runs it."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import names

ROOT = Path(__file__).resolve().parents[1]


# The benchmarks that share one process, each with its own flags, and a row its --quick
# run prints. After each one runs, the flags and the benchmark modules it brought are
# removed, so the next one defines its own. `distributed` comes first: it splits the CPU
# into four logical devices, which TensorFlow allows only before it has run an operation
# (the others run on the first device, as they would alone).
SHARED_PROCESS = [
    ("distributed", "| MirroredStrategy, 4 CPU device(s) |"),
    ("dense_eval", "| multi-crop, Q=256,384,512, 150 crops |"),
    ("initialisation", "| E | glorot |"),
    ("pipeline_all_cores", "| train_dataset |"),
    ("pipeline", "| train_dataset |"),
    ("serving", "| SavedModel |"),
    ("small_data", "| freeze_convs |"),
    ("inference", "| keras_vgg mixed_bfloat16 |"),
    ("startup", "| keras_vgg.VGG16(weights=file) |"),
    ("training", "| keras_vgg |"),
]


def quick_runs(names_and_flags) -> subprocess.CompletedProcess:
    """`python -m benchmarks.<name> --quick <flags>` for each, one after the other in one
    fresh process (one TensorFlow start); each one's output follows a line `=== <name>`."""
    script = textwrap.dedent(f"""
        import importlib, pathlib, sys
        from absl import flags
        sys.path.insert(0, "tests")
        from flag_scope import forgotten_afterwards
        for name, extra in {list(names_and_flags)!r}:
            with forgotten_afterwards(pathlib.Path("benchmarks").resolve()):
                module = importlib.import_module("benchmarks." + name)
                flags.FLAGS.unparse_flags()
                flags.FLAGS(["benchmarks." + name, "--quick", *extra])
                print("=== " + name, flush=True)
                module.main([name])
    """)
    return subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                          text=True, timeout=900, check=False)


@pytest.mark.slow
def test_every_benchmark_runs_quick(tmp_path):
    before = (ROOT / "BENCHMARKS.md").read_text()
    result = quick_runs([(name, [f"--demo={tmp_path}"] if name == "dense_eval" else [])
                         for name, _ in SHARED_PROCESS])
    assert result.returncode == 0, result.stderr[-3000:]
    outputs = dict(part.split("\n", 1) for part in result.stdout.split("=== ")[1:])
    for name, expected in SHARED_PROCESS:
        assert expected in outputs[name], (name, outputs[name][-2000:])
    assert (ROOT / "BENCHMARKS.md").read_text() == before


@pytest.mark.slow
@pytest.mark.without_tensorflow
def test_the_gpu_benchmark_runs_on_jax_without_tensorflow():
    """`--quick`, then the real run, which finds no GPU here: in one process with
    TensorFlow made unimportable, as on the GPU machines."""
    before = (ROOT / "BENCHMARKS.md").read_text()
    script = textwrap.dedent("""
        import sys
        sys.modules["tensorflow"] = None
        from absl import flags
        from benchmarks import gpu_training
        for extra in (["--quick"], []):
            flags.FLAGS.unparse_flags()
            flags.FLAGS(["benchmarks.gpu_training", *extra])
            print("=== " + " ".join(extra), flush=True)
            gpu_training.main([])
    """)
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                            text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    quick, full = result.stdout.split("=== ")[1:]
    assert "| mixed_bfloat16 | 2 |" in quick
    assert "libtpu" not in result.stderr  # JAX's plugin search stays quiet
    assert names(full, "Not measured", "no GPU"), full
    assert (ROOT / "BENCHMARKS.md").read_text() == before


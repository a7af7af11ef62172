
# isort: split
import contextlib
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

# Narrow networks keep the suite fast: 1/16 of the paper's widths (4..32 filters, 256 units).
NARROW = 1 / 16
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "recipes"))

# The CPU as four logical devices, for the tests of data parallelism (MirroredStrategy over
# REPLICA_DEVICES) in this process; TensorFlow allows it only before it runs an operation.
# Every other test runs on the first, as a user's process does.
REPLICA_DEVICES = [f"/cpu:{index}" for index in range(4)]
if keras.backend.backend() == "tensorflow":
    import tensorflow as tf

    tf.config.set_logical_device_configuration(
        tf.config.list_physical_devices("CPU")[0],
        [tf.config.LogicalDeviceConfiguration()] * len(REPLICA_DEVICES))


def pytest_collection_finish(session):
    """Exempts what the imports made (TensorFlow's and Keras' modules and graphs, most of
    the heap) from Python's full collections for the rest of the session. Each full
    collection would scan it again: about a second each, 19 s of the quick pass here."""
    import gc

    gc.collect()
    gc.freeze()


@pytest.fixture(autouse=True)
def _fresh_keras_session():
    keras.utils.set_random_seed(0)
    yield
    # Fresh layer names and global state for the next test; Python's collector runs on its
    # own schedule (a collection per test costs a third of a second with TensorFlow loaded).
    keras.backend.clear_session(free_memory=False)


@pytest.fixture
def images():
    """`images(n, size)`: a float32 batch `[n, size, size, 3]` in [0, 255]."""

    def make(count: int = 2, size: int = 32, seed: int = 0) -> np.ndarray:
        rng = np.random.default_rng(seed)
        return rng.uniform(0, 255, (count, size, size, 3)).astype("float32")

    return make


@contextlib.contextmanager
def tmpfs(path: Path, options: str):
    """A tmpfs mounted at `path` (`mount -o options`) for the block; skips the test where
    mounting is not allowed (it needs root)."""
    path.mkdir(exist_ok=True)
    if subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                      capture_output=True, check=False).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=True)


def run_python(script: str) -> subprocess.CompletedProcess:
    """Runs `script` in a fresh Python."""
    return subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
        check=False,
    )


@pytest.fixture(scope="session")
def demo_images(tmp_path_factory):
    """The demo's ten-class image set, small: 2 training and 1 held-out JPEG per class
    (`train/<class>/`, `val/<class>/`)."""
    import demo_data

    root = tmp_path_factory.mktemp("demo_images")
    demo_data.write(str(root), train_per_class=2, val_per_class=1)
    return root


def tiny_run_config(model_dir, images, **overrides):
    """A run of config A at 1/16 width, 32 px crops, on the demo images."""
    from keras_vgg import runs

    return runs.RunConfig(**{
        "model_dir": str(model_dir), "config": "A", "data": f"folder:{images}/train",
        "val_data": f"folder:{images}/val", "epochs": 1, "batch_size": 4,
        "width_multiplier": NARROW, "scale": (40, 48), "crop_size": 32, "seed": 0,
        **overrides})


@pytest.fixture(scope="session")
def tiny_run(demo_images, tmp_path_factory):
    """A finished training run (`keras_vgg.runs.Run`) of `tiny_run_config`: one epoch."""
    from keras_vgg import runs, training

    config = tiny_run_config(tmp_path_factory.mktemp("runs") / "tiny", demo_images)
    training.train(config, verbose=0)
    keras.backend.clear_session()
    return runs.load(config.model_dir)


@pytest.fixture(scope="session")
def tiny_export(tiny_run, tmp_path_factory):
    """`tiny_run` exported for TF-Serving as `keras-vgg-export --model_dir` exports it
    (without warm-up records): the version directory's path."""
    from keras_vgg import nets, serving

    return serving.export_net(nets.Net.of_run(tiny_run),
                              str(tmp_path_factory.mktemp("tiny_export")), warmup=False)


def forward(model, inputs):
    """`model`'s outputs on `inputs` in inference mode, as NumPy (a dict stays a dict): what
    `model.predict` gives on a small batch, without tracing a predict function per model."""
    return keras.tree.map_structure(keras.ops.convert_to_numpy, model(inputs, training=False))


def names(text: str, *facts: str) -> bool:
    """Whether a line of `text` names each of `facts` (substrings: numbers, flags, paths,
    names), in this order. Tests read a message's facts, not its wording."""
    for line in text.splitlines():
        position = 0
        for fact in facts:
            position = line.find(fact, position)
            if position < 0:
                break
            position += len(fact)
        else:
            return True
    return False


def run_command(module, *args: str) -> int:
    """Runs a `keras_vgg.cli` command in this process, with flags of its own, as its console
    command would: returns its exit status; a message it exits with goes to stderr."""
    from absl import flags

    values = flags.FlagValues()
    module.define_flags(values)
    try:
        module.main(values([module.PROGRAM, *args]), values)
    except SystemExit as exit:
        return exit_status(exit)
    return 0


def exit_status(exit: SystemExit) -> int:
    """The status a process ending with `exit` returns, as Python gives it: 1 for a
    message, which goes to stderr."""
    if isinstance(exit.code, str):
        print(exit.code, file=sys.stderr)
        return 1
    return exit.code or 0


def run_recipe(name: str, *args: str) -> tuple[int, str]:
    """`python recipes/<name>.py <args>` in this process, as `app.run` runs its `main`: its
    exit status and what it printed. A message it exits with goes to stderr. Then its flags
    go, with the recipe modules it imported, so that another recipe can define its own of
    the same names (the demo's and the paper's `--workdir`)."""
    import importlib
    import io

    from absl import flags
    from flag_scope import forgotten_afterwards

    printed = io.StringIO()
    with forgotten_afterwards(ROOT / "recipes"):
        try:
            module = importlib.import_module(name)
            flags.FLAGS.unparse_flags()  # every flag but `args` at its default
            flags.FLAGS([f"{name}.py", *args])
            with contextlib.redirect_stdout(printed):
                module.main([])
            status = 0
        except SystemExit as exit:
            status = exit_status(exit)
    return status, printed.getvalue()


@pytest.fixture(scope="session")
def photographs(tmp_path_factory):
    """Real photographs (scikit-image's) as image files of several formats and sizes."""
    from image_files import encode, photo

    root = tmp_path_factory.mktemp("photographs")
    files = {"astronaut.jpg": encode(photo("astronaut")),
             "chelsea.png": encode(photo("chelsea"), "PNG"),
             "coffee.JPEG": encode(photo("coffee"), quality=80)}
    for name, contents in files.items():
        (root / name).write_bytes(contents)
    return root

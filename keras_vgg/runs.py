"""A training run described once: what `keras_vgg.training.train` is given (`RunConfig`),
and what it leaves in the run directory beside the weights (`run.json`) so that evaluation,
export, the demo and the benchmarks rebuild and use the trained net from the directory alone.

    <model_dir>/run.json            RunConfig, and the classes (ids and names, label order)
    <model_dir>/final.weights.h5    the trained weights
    <model_dir>/history.csv, logs/  per-epoch metrics (CSV, TensorBoard)

    run = runs.load("runs/a")               # or runs.load("runs/a/run.json")
    model = run.build_model()               # the trained net, weights loaded
    run.test_scale, run.test_scales         # the paper's Q and Q set for this run

The defaults are the paper's (Sect. 3.1), with the readings that the paper leaves open:
- the learning rate 1e-2 is for its batch of 256; by default it scales with the global
  batch (`learning_rate = 1e-2 * batch_size / 256`, the linear rule). A run started from
  other weights (`init_from`) that provide every layer starts from 1e-3, as the paper's
  S=384 net did from the S=256 one; one that leaves layers new (a classifier for other
  classes) keeps 1e-2, as the paper's deeper nets did with random layers beside
  pre-initialised ones (Sect. 3.1; `Run.new_layers`);
- the batch is 256, or, for a training set too small for `MIN_STEPS_PER_EPOCH` steps of
  256, the power of two that gives that many (`default_batch_size`; `batch_size=None`
  until `training.train` reads the data);
- a plateau of the schedule is `plateau_patience` epochs and `plateau_min_steps` steps
  (`keras_vgg.callbacks.PaperSchedule`; BENCHMARKS.md, Small data);
- the initialisation is Glorot & Bengio's (`init="glorot"`): it trains every config from
  scratch, as the paper's closing note says; "gaussian" is N(0, 0.01^2), from which the
  signal fades layer by layer and no config's loss moves off ln(1000) in its first steps
  (BENCHMARKS.md, Initialisation).

A run started from other weights (`init_from`: a run directory, "imagenet", a torchvision
or timm checkpoint, a Keras file or a KerasHub preset) takes what they say for the fields
left unset: a run its network, width, crop, scale and preprocessing, a preset its network
and width, any source its preprocessing (`starting_point`); `check_starting_point`
refuses what contradicts them. Config names are stored as the paper's (`vgg16` -> `D`).

Settings that cannot train (a missing data path, a zero crop size or width, a dropout outside
[0, 1), a negative rate, weight decay or patience) raise a ValueError naming the field before
anything is built. Data paths are stored absolute in `run.json`, so the run directory reads
the same from anywhere.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import os
import types
import typing
from collections.abc import Collection, Sequence

import keras

from keras_vgg import configs, files, imagenet, models, pretrained, sources, tasks
from keras_vgg import weights as weight_files
from keras_vgg.image_ops import CROP_SIZE, parse_scale

# Sect. 3.1.
PAPER_BATCH_SIZE = 256
PAPER_EPOCHS = 74
PAPER_WEIGHT_DECAY = 5e-4
PAPER_DROPOUT = models.PAPER_DROPOUT
PAPER_LR_DROPS = 3
LR_DROP_FACTOR = 0.1
PAPER_SCALE = 256
# Sect. 3.2: multi-scale testing at {S - 32, S, S + 32} for a fixed S.
MULTI_SCALE_OFFSET = 32
# The default batch of a small training set: an epoch (between two validations, which the
# schedule judges) of at least this many steps.
MIN_STEPS_PER_EPOCH = 32
# The schedule's plateau lasts at least this many training steps as well as
# `plateau_patience` epochs (BENCHMARKS.md, Small data: the demo's epochs are 47 steps).
PLATEAU_MIN_STEPS = 500

INITIALISATIONS = ("glorot", "gaussian")
MIXED_PRECISION = (None, "bfloat16", "float16")
RUN_FILE = "run.json"
WEIGHTS_FILE = "final.weights.h5"
_FORMAT = "keras_vgg.run/1"


def scaled_learning_rate(rate: float, batch_size: int) -> float:
    """`rate` (given for the paper's batch of 256) for a global batch of `batch_size`."""
    return rate * batch_size / PAPER_BATCH_SIZE


def _absolute_source(spec: str) -> str:
    """A `folder:` or `tfrecord:` spec with its location made absolute; others unchanged."""
    parsed = sources.SourceSpec.parse(spec)
    if parsed.kind not in ("folder", "tfrecord"):
        return spec
    return dataclasses.replace(parsed, location=os.path.abspath(parsed.location)).spec


def default_batch_size(num_examples: int | None) -> int:
    """The global batch of a run on `num_examples` training images (None: unknown): the
    paper's 256, or, for a set too small for `MIN_STEPS_PER_EPOCH` steps of 256, the
    largest power of two that gives that many (at least 1)."""
    if num_examples is None or num_examples >= PAPER_BATCH_SIZE * MIN_STEPS_PER_EPOCH:
        return PAPER_BATCH_SIZE
    return 2 ** int(math.log2(max(1, num_examples // MIN_STEPS_PER_EPOCH)))


# What a starting point decides about the network; the first two cannot be changed.
_NETWORK_FIELDS = ("config", "width_multiplier", "crop_size", "scale", "preprocessing")


def starting_point(init_from: str) -> dict:
    """What the weights `init_from` names say of the run, as `RunConfig` fields: a run
    directory its network, width, crop, scale and preprocessing; a KerasHub preset its
    network and width; any source its preprocessing (`keras_vgg.pretrained`).

    Raises:
      ValueError: `init_from` is no run, weights file, preset or "imagenet".
    """
    if is_run(init_from):
        run = load(init_from).config
        return {name: getattr(run, name) for name in _NETWORK_FIELDS}
    source = pretrained.identify(init_from)
    said = {"preprocessing": source.preprocessing}
    if source.config is not None:
        said.update(config=source.config.name, width_multiplier=source.width_multiplier)
    return said


def check_starting_point(config: RunConfig) -> None:
    """Refuses a network (`config`, `width_multiplier`) or a preprocessing that contradicts
    the weights `config.init_from` names, and ImageNet weights for a network Keras has
    none for (fetching them once, so that a missing file is named before anything else);
    warns of a preprocessing other than the usual one for a file's format.

    Raises:
      ValueError: naming the field, its value and the starting point's.
    """
    if not config.init_from:
        return
    said = starting_point(config.init_from)
    strict = {"config", "width_multiplier"} | (
        {"preprocessing"} if is_run(config.init_from) else set())
    for name in sorted(strict & set(said)):
        if said[name] != getattr(config, name):
            raise ValueError(f"{name}={getattr(config, name)!r} contradicts init_from="
                             f"{config.init_from}, whose {name} is {said[name]!r}: leave "
                             f"{name} unset")
    if not is_run(config.init_from):
        pretrained.resolve_preprocessing(pretrained.identify(config.init_from),
                                         config.preprocessing)
    if config.init_from == pretrained.IMAGENET:
        network = configs.get(config.config)
        weight_files.check_imagenet_available(network, width_multiplier=config.width_multiplier)
        weight_files.fetch_imagenet_weights(network, include_top=True)  # there, or named missing


def _field(default, help_text: str, **metadata):
    return dataclasses.field(default=default, metadata={"help": help_text, **metadata})


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Everything a training run is given; the flags of `recipes/imagenet_train.py` are
    these fields, with these defaults and help texts. Frozen and JSON-serialisable
    (`to_json` / `from_json`); invalid values raise a ValueError naming the field."""

    model_dir: str = _field(None, "Checkpoints, logs, run.json and the final weights go here.")
    config: str | None = _field(
        None, "Network: A, A-LRN, B, C, D, E, a variant (D-BN, B-5x5) or a torchvision name "
        "(vgg16); default the --init_from run's or KerasHub preset's, else D.")
    data: str = _field("tfds:imagenet2012", "Training source (tfds:, folder:, tfrecord:).")
    val_data: str | None = _field(
        None, "Validation source; default the TFDS validation split of --data.")
    epochs: int = _field(PAPER_EPOCHS, "Most epochs (the paper stopped at 74).")
    batch_size: int | None = _field(
        None, "Global batch size; default the paper's 256, or, for fewer than 256 x "
        f"{MIN_STEPS_PER_EPOCH} training images, the power of two that gives an epoch at "
        f"least {MIN_STEPS_PER_EPOCH} steps.")
    learning_rate: float | None = _field(
        None, "Initial learning rate; default the paper's 0.01 at batch 256 scaled to "
        "--batch_size (0.01 x batch / 256), or 0.001 x batch / 256 when --init_from provides "
        "every layer (the same classes).")
    momentum: float = _field(tasks.PAPER_MOMENTUM, "SGD momentum.")
    weight_decay: float = _field(
        PAPER_WEIGHT_DECAY, "Caffe weight decay (gradient + wd * w), applied as L2(wd / 2).")
    dropout: float = _field(PAPER_DROPOUT, "Dropout after fc1 and fc2.")
    scale: tuple[int, int] | None = _field(
        None, "Training scale S ('256') or jitter range ('256,512'); default the --init_from "
        "run's, else 256.")
    crop_size: int | None = _field(
        None, "Training crop side, pixels; default the --init_from run's, else 224.")
    test_scale: int | None = _field(
        None, "Validation Q; default S, or (S_min + S_max) / 2 when jittering.")
    init: str = _field(
        "glorot", "glorot: Glorot & Bengio, which trains every config from scratch. "
        "gaussian: the paper's 'zero mean and 10^-2 variance' read as Caffe's N(0, 0.01^2); "
        "from it the loss stays at ln(classes) for many steps, and the paper started deeper "
        "nets from a trained A (--warm_start). Read literally (std 0.1) it diverges: config "
        "A starts at a loss of ~5e8 and is NaN by step 3.", choices=INITIALISATIONS)
    warm_start: str | None = _field(
        None, "A config-A run directory or weights file: copy its first four convs and three "
        "FC layers (the paper's initialisation of deeper nets).")
    init_from: str | None = _field(
        None, "Weights to fine-tune: 'imagenet' (Keras' VGG16/VGG19), a run directory, a "
        "torchvision/timm checkpoint (.pth, .safetensors), a Keras weights file or a KerasHub "
        "preset folder. Every layer whose shape fits is loaded; the classifier is new when the "
        "class count differs. The rate then defaults to 0.001 x batch / 256 when every layer "
        "is loaded, and stays 0.01 x batch / 256 beside new layers.")
    freeze_convs: bool = _field(
        False, "With --init_from: train fc1, fc2 and the classifier only; the conv layers "
        "keep the loaded weights.")
    width_multiplier: float | None = _field(
        None, "Scales conv widths and FC units; default the --init_from run's or preset's, "
        "else 1.0 (the paper).")
    steps_per_epoch: int | None = _field(
        None, "Steps per epoch, at most one pass (each epoch restarts the data).")
    validation_steps: int | None = _field(None, "Validation batches per epoch; default all.")
    seed: int | None = _field(None, "Seed of initialisation and augmentation.")
    deterministic: bool = _field(False, "Enable TensorFlow op determinism (needs --seed).")
    mixed_precision: str | None = _field(
        None, "Compute in this dtype, keep float32 variables.", choices=MIXED_PRECISION[1:])
    plateau_patience: int = _field(
        2, "Epochs without validation-accuracy gain before the rate drops.")
    plateau_min_steps: int = _field(
        PLATEAU_MIN_STEPS, "Training steps without validation-accuracy gain before the rate "
        "drops, at least (an ImageNet epoch at batch 256 is 5,000 steps; this keeps small "
        "data sets' epochs of a few dozen steps from dropping the rate within the noise).")
    log_every: int = _field(
        20, "Write TensorBoard scalars (loss, learning rate, images/s) every this many "
        "training steps.")
    preprocessing: str | None = _field(
        None, "Input preprocessing; default the --init_from weights' (caffe for Keras', torch "
        "for torchvision/timm ones), else caffe (mean subtraction, as the paper and Keras).",
        choices=imagenet.PREPROCESSING_MODES)
    task: str = _field(
        "classification", "classification, or localisation (Appendix A): the last FC layer "
        "predicts boxes; the data needs boxes ('folder:DIR?boxes=XML_DIR_OR_LOC_CSV'), and "
        "--init_from a classification run starts every other layer.", choices=tuple(tasks.TASKS))
    box_regression: str = _field(
        "pcr", "Localisation: pcr (a box per class, the paper's best) or scr (one box).",
        choices=tasks.Localisation.modes)

    def __post_init__(self):
        if not self.model_dir:
            raise ValueError("model_dir is required: the run's checkpoints and weights go there")
        if not self.data:
            raise ValueError("data is required: the training images (tfds:, folder: or "
                             "tfrecord:)")
        _check_field_types(self)
        # Paths are kept absolute, so that run.json means the same from any directory.
        for name in ("model_dir", "warm_start", "init_from"):
            value = getattr(self, name)
            if value and value != pretrained.IMAGENET:
                object.__setattr__(self, name, os.path.abspath(value))
        for name in ("data", "val_data"):
            if getattr(self, name):
                object.__setattr__(self, name, _absolute_source(getattr(self, name)))
        for name, value in self._network_defaults().items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)
        object.__setattr__(self, "config", configs.get(self.config).name)
        object.__setattr__(self, "scale", parse_scale(self.scale))
        for name in ("epochs", "batch_size", "crop_size", "steps_per_epoch",
                     "validation_steps", "test_scale", "plateau_patience", "log_every"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(
                    value, numbers.Integral) or value < 1):
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
            if value is not None:
                object.__setattr__(self, name, int(value))
        if self.learning_rate is not None and not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be positive, got {self.learning_rate}")
        if isinstance(self.plateau_min_steps, bool) or not isinstance(
                self.plateau_min_steps, numbers.Integral) or self.plateau_min_steps < 0:
            raise ValueError(f"plateau_min_steps must be 0 or more, got "
                             f"{self.plateau_min_steps!r}")
        if not self.weight_decay >= 0:
            raise ValueError(f"weight_decay must be 0 or more, got {self.weight_decay}")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if not self.width_multiplier > 0:
            raise ValueError(f"width_multiplier must be positive, got {self.width_multiplier}")
        for name, allowed in (("init", INITIALISATIONS), ("mixed_precision", MIXED_PRECISION),
                              ("preprocessing", imagenet.PREPROCESSING_MODES),
                              ("task", tuple(tasks.TASKS)),
                              ("box_regression", tasks.Localisation.modes)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name}={getattr(self, name)!r}: expected one of {allowed}")
        if self.crop_size > self.scale[0]:
            raise ValueError(
                f"crop_size={self.crop_size} is larger than the training scale "
                f"S={self.scale[0]}: the crop comes from the image rescaled so its shorter "
                "side is S")
        if self.test_scale is not None and self.test_scale < self.crop_size:
            raise ValueError(f"test_scale={self.test_scale} is smaller than crop_size="
                             f"{self.crop_size}")
        if self.warm_start and self.init_from:
            raise ValueError("warm_start and init_from exclude each other")
        if self.freeze_convs and not self.init_from:
            raise ValueError("freeze_convs keeps the conv layers of --init_from: give one")
        if self.seed is not None and not 0 <= self.seed < 2**32:
            raise ValueError(f"seed must be in [0, 2**32), got {self.seed}")
        if self.deterministic and self.seed is None:
            raise ValueError("deterministic needs a seed")
        if not self.val_data and not self.data.startswith("tfds:"):
            raise ValueError("val_data is needed for folder: and tfrecord: training data")

    def _network_defaults(self) -> dict:
        """The network fields' defaults: what `init_from` says (a run: its network, width,
        crop, scale and preprocessing; a KerasHub preset: its network and width; any
        source: its preprocessing), else the paper's. Reads `init_from` only when a field
        is unset."""
        defaults = {"config": "D", "width_multiplier": 1.0, "crop_size": CROP_SIZE,
                    "scale": (PAPER_SCALE, PAPER_SCALE), "preprocessing": "caffe"}
        if not self.init_from or all(getattr(self, name) is not None for name in defaults):
            return defaults
        try:
            return {**defaults, **starting_point(self.init_from)}
        except ValueError as error:
            raise ValueError(f"init_from: {error}") from error

    def initial_learning_rate(self, new_layers: Collection[str] = ()) -> float:
        """The rate the run starts at: `learning_rate`, else the paper's for this batch and
        for the layers `init_from` leaves new (`Run.new_layers`)."""
        if self.learning_rate is not None:
            return self.learning_rate
        if self.batch_size is None:
            raise ValueError("the default learning rate follows the batch size, which is set "
                             "from the training data when training starts")
        return scaled_learning_rate(tasks.of(self).paper_learning_rate(self, new_layers)[0],
                                    self.batch_size)

    def learning_rate_origin(self, new_layers: Collection[str] = ()) -> str:
        """Where `initial_learning_rate(new_layers)` comes from, for the log."""
        if self.learning_rate is not None:
            return "--learning_rate"
        rate, name = tasks.of(self).paper_learning_rate(self, new_layers)
        return (f"the paper's {name}, {rate:g} at batch {PAPER_BATCH_SIZE}, x "
                f"{self.batch_size}/{PAPER_BATCH_SIZE}")

    @property
    def test_scale_in_use(self) -> int:
        """Single-scale Q (Sect. 3.2): `test_scale`, else S, or (S_min + S_max) / 2."""
        if self.test_scale is not None:
            return self.test_scale
        low, high = self.scale
        return low if low == high else (low + high) // 2

    @property
    def test_scales(self) -> tuple[int, ...]:
        """Multi-scale Q set (Sect. 3.2): {S - 32, S, S + 32} for a fixed S, {S_min,
        (S_min + S_max) / 2, S_max} for a jittered one; none below the crop."""
        low, high = self.scale
        if low == high:
            scales = (low - MULTI_SCALE_OFFSET, low, low + MULTI_SCALE_OFFSET)
        else:
            scales = (low, (low + high) // 2, high)
        return tuple(sorted({max(q, self.crop_size) for q in scales}))

    @property
    def validation_source(self) -> tuple[str, str]:
        """The validation spec and split: `val_data`, else the training TFDS dataset's
        validation split."""
        if self.val_data:
            return self.val_data, "validation"
        parsed = sources.SourceSpec.parse(self.data)
        options = {key: value for key, value in parsed.options.items() if key != "split"}
        return sources.SourceSpec(parsed.kind, parsed.location, options).spec, "validation"

    def to_json(self) -> dict:
        return {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}

    @classmethod
    def from_json(cls, values: dict) -> RunConfig:
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown run settings {unknown}; expected some of {sorted(known)}")
        return cls(**values)


def _accepts(hint, value) -> bool:
    """Whether `value` is of the field type `hint` (scale: what `parse_scale` reads)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_accepts(option, value) for option in typing.get_args(hint))
    if value is None or hint is type(None):
        return value is None and hint is type(None)
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if hint is float:
        return (isinstance(value, numbers.Real) and not isinstance(value, bool)
                and math.isfinite(value))
    if origin is tuple:  # "256", "256,512", 256, (256, 512)
        return isinstance(value, (str, numbers.Integral, tuple, list)) and not isinstance(
            value, bool)
    if hint is str:  # paths may be given as pathlib paths
        return isinstance(value, str | os.PathLike)
    return isinstance(value, hint)


_DESCRIPTIONS = {bool: "true or false", int: "an integer", float: "a finite number",
                 str: "a string", type(None): "null"}


def _check_field_types(config: RunConfig) -> None:
    """Raises a ValueError naming the first field whose value is not of its type."""
    hints = typing.get_type_hints(RunConfig)
    for field in dataclasses.fields(config):
        hint, value = hints[field.name], getattr(config, field.name)
        if not _accepts(hint, value):
            options = typing.get_args(hint) if typing.get_origin(hint) in (
                typing.Union, types.UnionType) else (hint,)
            expected = " or ".join(_DESCRIPTIONS.get(option, "a scale such as '256,512'")
                                   for option in options)
            shown = repr(value)
            shown = shown if len(shown) <= 60 else shown[:57] + "..."
            raise ValueError(f"{field.name} must be {expected}, got {shown}")


@dataclasses.dataclass(frozen=True)
class Run:
    """A training run as saved in its directory: its config and the classes it learnt.

    Attributes:
      config: the `RunConfig` it was trained with.
      class_ids: the class identifiers in label order (synsets, folder names, or ids).
      class_names: readable names in label order (ImageNet's for synsets, else the ids).
      directory: where it was loaded from (None before it is saved).
      new_layers: the layers `config.init_from` did not provide, initialised afresh (a
        classifier for other classes); empty without `init_from`. They set the default
        learning rate (`initial_learning_rate()`).
    """

    config: RunConfig
    class_ids: tuple[str, ...]
    class_names: tuple[str, ...]
    directory: str | None = None
    new_layers: tuple[str, ...] = ()

    @classmethod
    def of(cls, config: RunConfig, class_ids: Sequence[str]) -> Run:
        """A run of `config` on classes `class_ids`; names from ImageNet's where known."""
        readable = dict(imagenet.class_index().values())
        ids = tuple(str(i) for i in class_ids)
        return cls(config, ids, tuple(readable.get(i, i) for i in ids), config.model_dir)

    @property
    def num_classes(self) -> int:
        return len(self.class_ids)

    def initial_learning_rate(self) -> float:
        return self.config.initial_learning_rate(self.new_layers)

    def learning_rate_origin(self) -> str:
        return self.config.learning_rate_origin(self.new_layers)

    @property
    def test_scale(self) -> int:
        return self.config.test_scale_in_use

    @property
    def test_scales(self) -> tuple[int, ...]:
        return self.config.test_scales

    @property
    def weights_path(self) -> str:
        return os.path.join(self.directory or self.config.model_dir, WEIGHTS_FILE)

    def build_model(self, *, weights: str | None | bool = True, **options) -> keras.Model:
        """The run's network as its task builds it (`keras_vgg.tasks`: config, width, crop,
        classes, dropout, and a box layer for localisation); with the trained weights by
        default, `weights=False` for fresh ones or a path for others. `options` go to
        `keras_vgg.vgg` (kernel_initializer, kernel_regularizer...)."""
        if weights is True:
            weights = self.weights_path
            if not os.path.isfile(weights):
                raise ValueError(f"run {self.directory!r} has no trained weights: {weights} "
                                 "is missing (the run has not finished)")
        return tasks.of(self.config).build(self, weights=weights or None, **options)

    def save(self, directory: str | None = None) -> str:
        """Writes `run.json` into `directory` (default the run's); returns its path."""
        directory = directory or self.directory or self.config.model_dir
        os.makedirs(directory, exist_ok=True)
        path = os.path.join(directory, RUN_FILE)
        document = {
            "format": _FORMAT,
            "run_config": self.config.to_json(),
            "classes": [{"id": i, "name": n}
                        for i, n in zip(self.class_ids, self.class_names, strict=True)],
            "new_layers": list(self.new_layers),
            "versions": {"keras_vgg": _package_version(), "keras": keras.__version__},
        }
        files.write_json(path, document)
        return path


def _package_version() -> str:
    from keras_vgg import __version__

    return __version__


def is_run(path: str | os.PathLike) -> bool:
    """Whether `path` is a run directory (holds run.json) or a run.json file."""
    path = os.fspath(path)
    return os.path.isfile(os.path.join(path, RUN_FILE)) or (
        os.path.basename(path) == RUN_FILE and os.path.isfile(path))


def load(path: str | os.PathLike) -> Run:
    """The run saved in a directory (or its run.json); ValueError naming the file and the
    field when there is none or it does not describe a run."""
    path = os.fspath(path)
    file = path if os.path.basename(path) == RUN_FILE else os.path.join(path, RUN_FILE)
    if not os.path.isfile(file):
        raise ValueError(f"{path} is not a training run: it has no {RUN_FILE} "
                         "(recipes/imagenet_train.py writes one into --model_dir)")
    document = files.read_json(file, what="run description")
    try:
        return _run_of(document, os.path.dirname(os.path.abspath(file)))
    except ValueError as error:
        raise ValueError(f"{file}: {error}") from error


def _run_of(document, directory: str) -> Run:
    if not isinstance(document, dict) or document.get("format") != _FORMAT:
        raise ValueError(f"the file is not a keras_vgg run description (format {_FORMAT})")
    settings, classes = document.get("run_config"), document.get("classes")
    if not isinstance(settings, dict):
        raise ValueError("'run_config' is missing or not an object")
    if not isinstance(classes, list) or not classes or not all(
            isinstance(entry, dict) and isinstance(entry.get("id"), str)
            and isinstance(entry.get("name"), str) for entry in classes):
        raise ValueError('\'classes\' must be a list of {"id": "...", "name": "..."}, one '
                         "per class")
    new_layers = document.get("new_layers", [])
    if not isinstance(new_layers, list) or not all(isinstance(n, str) for n in new_layers):
        raise ValueError("'new_layers' must be a list of layer names")
    return Run(RunConfig.from_json(settings), tuple(c["id"] for c in classes),
               tuple(c["name"] for c in classes), directory, tuple(new_layers))


def weights_file(path: str, *, what: str) -> str:
    """A weights file named directly, or the final weights of a finished run directory."""
    if is_run(path):
        weights = load(path).weights_path
        if not os.path.isfile(weights):
            raise ValueError(f"{what}={path}: the run has not finished ({weights} is missing)")
        return weights
    if not os.path.isfile(path):
        raise ValueError(f"{what}={path}: no such file or run directory")
    return path


def check_same_classes(expected: Sequence[str], found: Sequence[str], *, what: str) -> None:
    """Raises a ValueError unless `found` (a source's class ids, in label order) are
    `expected`: other classes, or the same in another order, would make its labels wrong."""
    if tuple(expected) == tuple(found):
        return
    missing = sorted(set(expected) - set(found))[:5]
    extra = sorted(set(found) - set(expected))[:5]
    details = (f"missing {missing}, " if missing else "") + (f"extra {extra}" if extra else "")
    raise ValueError(
        f"{what} labels {len(found)} classes where {len(expected)} are expected"
        f"{' (' + details.rstrip(', ') + ')' if details else ', in another order'}: its "
        "labels would be wrong; give it the same class folders, or one class list to both "
        "('?classes=FILE', '?classes=imagenet')")

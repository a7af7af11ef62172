"""Training the paper's way (Sect. 3.1), as one call on a `keras_vgg.runs.RunConfig`:

    from keras_vgg import runs, training
    result = training.train(runs.RunConfig(
        model_dir="runs/a", config="A", data="folder:/data/train", val_data="folder:/data/val"))
    print(result.summary())         # validation images, loss, top-1 and top-5 accuracy

Multinomial logistic regression; mini-batch SGD with momentum 0.9; weight decay 5e-4
(Caffe's: the gradient gets 5e-4 * w, i.e. an L2 loss of 2.5e-4 * |w|^2; Keras' decoupled
`weight_decay` is a different rule under momentum); dropout 0.5 on fc1/fc2; the learning
rate divided by 10 when validation accuracy stops improving, three times, then stop.

The run directory receives `run.json` (the run's description, see `keras_vgg.runs`),
`final.weights.h5` (the net's weights, in `model.save_weights`' layout, without the
optimizer's state, which is as large again), `history.csv`, TensorBoard logs, and
`checkpoint/` while it runs: one atomic checkpoint per completed epoch
(`keras_vgg.checkpoints`), from which a run that is stopped resumes when started again
with the same config (with a seed, exactly). A validation set read whole (no
`validation_steps`), of a known size whose crops fit in `VALIDATION_CACHE_BYTES`, is
decoded in the first epoch and read from memory after it (an image skipped then stays
skipped).

Fine-tuning (`init_from`) loads every layer whose shape fits (`initialise_from`): the
classifier stays new when the class count differs, and the log names what was loaded and
what is new. The default rate is the paper's fine-tuning rate when nothing is new, else its
initial rate (`keras_vgg.runs`); `freeze_convs` trains the head only.

Training needs Keras' TensorFlow backend (tf.data, tf.distribute) and refuses another. It
refuses training data of one class, data smaller than a given batch (each step would be
smaller than the batch the learning rate is scaled for), and a `model_dir` holding a
finished run or a run with other settings (only `epochs` may grow). The result says whether
the net learnt: above chance on the validation images (`TrainingResult.learnt`). The log
states the learning rate in use and where it comes from. With a seed, every epoch's data is
a function of the seed and the epoch, so a run resumed after any kill (SIGKILL included)
ends with bit-identical weights under `deterministic`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import sys
import warnings

import keras

from keras_vgg import (
    callbacks,
    checkpoints,
    configs,
    distribute,
    files,
    pretrained,
    runs,
    sources,
    tasks,
    weights,
)
from keras_vgg.requires_tensorflow import tf

# Validation sets read whole, their size known, up to this size as float32 crops, are
# decoded once and kept in memory: each epoch after the first reads them from there,
# without decoding or starting the pipeline's functions again.
VALIDATION_CACHE_BYTES = 1 << 30


def _starts_from_its_own_task(config: runs.RunConfig) -> bool:
    """Whether `init_from` is a run of the same task (a box net fine-tuned as a box net)."""
    return bool(config.init_from) and runs.is_run(config.init_from) and (
        runs.load(config.init_from).config.task == config.task)


class RunError(ValueError):
    """Settings or data that cannot train, found before training starts."""


class OutOfMemory(RuntimeError):
    """A training step needed more memory than the device has; the message says what to
    change."""


@dataclasses.dataclass(frozen=True)
class TrainingResult:
    """The finished run and its final centre-crop validation (Sect. 3.2's single-scale Q)."""

    run: runs.Run
    epochs: int
    val_images: int
    val_loss: float
    val_accuracy: float
    val_top5: float | None  # None for localisation

    @property
    def learnt(self) -> bool | None:
        """Whether the net ends beyond chance, as its task reads the validation
        (`tasks.Classification.learnt`: top-1 accuracy above guessing, None when the images
        are too few to tell; for localisation, any box right)."""
        return tasks.of(self.run.config).learnt(self, callbacks.above_chance)

    def not_learnt(self) -> str:
        """Why the run counts as not having learnt, and the flags to try."""
        config = self.run.config
        found = tasks.of(config).not_learnt(self)
        rate = self.run.initial_learning_rate()
        return (f"the run did not learn: {found}. Try a higher rate (--learning_rate="
                f"{3 * rate:.3g}; it started at {rate:.3g}, {self.run.learning_rate_origin()}), "
                f"more epochs (--epochs, now {config.epochs}), more images per class, or "
                f"check that the classes differ in the images. The run is in "
                f"{self.run.directory}; give a new --model_dir to train again.")

    def summary(self) -> str:
        return (f"Validation (centre crop, Q={self.run.test_scale}) on {self.val_images} images "
                f"after {self.epochs} epoch{'s' * (self.epochs != 1)}: "
                f"{tasks.of(self.run.config).summary(self)}. Run: {self.run.directory}")


def divergence_advice(run: runs.Run, cause: str) -> str:
    """What to change when `run` diverges, for `callbacks.DivergenceGuard`'s message:
    cause "start" (the first loss, before any update: the initialisation or the inputs) or
    "growth" (during training: most often the learning rate)."""
    config = run.config
    restart = (" in a new --model_dir (resuming this one repeats the same steps and diverges "
               "again).")
    if cause == "start":
        steps = [f"The initialisation (--init={config.init}) or the inputs are likely off: "
                 f"check that --preprocessing={config.preprocessing} is the one the data "
                 "needs"]
        if config.init != "glorot":
            steps.append("start again with --init=glorot")
        return "; ".join(steps) + "," + restart
    rate = run.initial_learning_rate()
    default = dataclasses.replace(run, config=dataclasses.replace(config, learning_rate=None))
    steps = [f"The learning rate {rate:.6g} ({run.learning_rate_origin()}) is likely too "
             f"high: start again with --learning_rate={rate / 10:.3g} or lower"]
    if config.learning_rate is not None and config.learning_rate > default.initial_learning_rate():
        steps[0] += (f", or leave --learning_rate unset for "
                     f"{default.initial_learning_rate():.6g} ({default.learning_rate_origin()})")
    if config.init == "gaussian" and not (config.warm_start or config.init_from):
        steps.append("with --init=glorot, which trains every config from scratch")
    return "; ".join(steps) + "," + restart


def _check_resumable(run: runs.Run, directory: str) -> None:
    """A directory that already holds a run must hold this one, unfinished: resuming it
    with other settings would mix two runs (the checkpoint keeps the old learning rate, for
    one). Only `epochs` may change, to train longer. The settings are kept twice, in
    `run.json` and in the checkpoint, and each copy there is checked; a checkpoint without
    its settings is refused."""
    if os.path.exists(os.path.join(directory, runs.WEIGHTS_FILE)):
        raise ValueError(f"{directory} holds a finished run "
                         f"({os.path.join(directory, runs.WEIGHTS_FILE)}): use a new model_dir")
    checkpoint = checkpoints.latest(directory)
    if checkpoint and not runs.is_run(checkpoint):
        raise ValueError(f"{directory} holds a checkpoint ({checkpoint}) without the settings "
                         f"it was trained with (its {runs.RUN_FILE} is missing): delete "
                         f"{checkpoints.directory(directory)} to train again from the first "
                         "epoch, or give another model_dir")
    for place in (directory, checkpoint):
        if not place or not runs.is_run(place):
            continue
        saved = runs.load(place)
        differ = {name: (value, getattr(run.config, name))
                  for name, value in saved.config.to_json().items()
                  if name not in ("model_dir", "epochs") and value != getattr(run.config, name)}
        if saved.class_ids != run.class_ids:
            differ["classes"] = (f"{saved.num_classes} classes", f"{run.num_classes} classes")
        if differ:
            details = ", ".join(f"{name} {old!r} -> {new!r}"
                                for name, (old, new) in differ.items())
            raise ValueError(f"{directory} holds a run with other settings ({details}): use a "
                             "new model_dir, or the same settings to resume it")


def _resume(run: runs.Run, model: keras.Model, strategy: tf.distribute.Strategy,
            state: checkpoints.RunState) -> str | None:
    """Restores the newest checkpoint in the run's directory into `model` and `state`
    (whose epoch is then the one to start at); returns its directory, None without one.
    Under several workers each restores its
    own, and all must hold the same epoch: else training would hang in a collective or
    drift apart, so every worker stops, naming the epochs: the epochs are compared before
    any worker loads its checkpoint."""
    if distribute.is_multi_worker(strategy):
        epoch = checkpoints.saved_epoch(run.directory)
        agree, mean = distribute.workers_agree(strategy, epoch)
        if not agree:
            raise ValueError(
                f"this worker resumes from epoch {epoch} ({run.directory}), but the workers "
                f"disagree (mean epoch {mean:g}): give every worker the same checkpoint "
                f"(copy the chief's {checkpoints.CHECKPOINT_DIR}/ into each worker's "
                "directory) or remove them all to start again")
    with strategy.scope():
        return checkpoints.restore(run.directory, model, state)


@dataclasses.dataclass(frozen=True)
class _Data:
    """What the checks of a run's data found: the classes (label order) and the training
    and validation image counts (None where a source does not say)."""

    class_ids: tuple[str, ...]
    train_images: int | None
    val_images: int | None


def _checked_data(config: runs.RunConfig) -> _Data:
    """The training source's classes and both sources' sizes, after checking the data: a
    classifier needs two classes or more, the validation source labels the same classes,
    and the training data fills a given batch (else every step is smaller than
    `batch_size`, and the learning rate, scaled for it, too high)."""
    task = tasks.of(config)
    train = sources.open_single_label(config.data, purpose="training")
    task.check_data(train, f"the training data {config.data!r}")
    if (config.batch_size is not None and train.num_examples is not None
            and train.num_examples < config.batch_size):
        raise ValueError(
            f"the training data {config.data!r} holds {train.num_examples} images, fewer than "
            f"one batch (batch_size={config.batch_size}): give batch_size="
            f"{train.num_examples} or less, or leave it unset")
    val_spec, val_split = config.validation_source
    validation = sources.open_single_label(val_spec, split=val_split, purpose="validation")
    task.check_validation_data(validation, f"the validation data {val_spec!r}")
    runs.check_same_classes(train.class_ids, validation.class_ids,
                            what=f"the validation data {val_spec!r}")
    return _Data(train.class_ids, train.num_examples, validation.num_examples)


def initialise_from(model: keras.Model, config: runs.RunConfig) -> tuple[tuple[str, ...], str]:
    """Loads `config.init_from` into `model` (built for `config`): every layer whose shape
    fits, all checked (`keras_vgg.pretrained`). A classifier's `predictions` stays new when
    the class count differs, and fc1 and fc2 too from a KerasHub backbone preset, which has
    no head. Returns the layers left new, and the log line: what was loaded and what is
    new."""
    location = config.init_from
    if runs.is_run(location):
        source = pretrained.identify(runs.weights_file(location, what="init_from"))
    else:
        source = pretrained.identify(location)
    new_layers = tasks.of(config).new_layers(source.has_head)
    fresh = pretrained.load(model, source, config=config.config, new_layers=new_layers)
    loaded = [layer.name for layer in model.layers if layer.weights and layer.name not in fresh]
    line = f"Initialised from {location}: loaded {len(loaded)} layers ({', '.join(loaded)})"
    if fresh:
        classes = model.get_layer(configs.PREDICTIONS_LAYER).units
        line += f"; new: {', '.join(fresh)} (initialised {config.init}; {classes} classes)"
    return tuple(fresh), line + "."


def _freeze_convs(model: keras.Model) -> list[str]:
    """Makes every layer with weights before fc1 untrainable (batch norm then uses its
    moving statistics); returns their names."""
    frozen = [layer for layer in model.layers
              if layer.weights and layer.name not in configs.HEAD_LAYERS]
    for layer in frozen:
        layer.trainable = False
    return [layer.name for layer in frozen]


def _model(run: runs.Run, strategy: tf.distribute.Strategy) -> tuple[keras.Model, runs.Run]:
    """The run's network, initialised as `run.config` says and compiled, under `strategy`;
    and the run with the layers `init_from` left new (`runs.Run.new_layers`), whose count
    sets the default rate."""
    config = run.config
    task = tasks.of(config)
    options = {"kernel_initializer": config.init,
               "kernel_regularizer": tasks.l2_for_weight_decay(config.weight_decay)}
    with strategy.scope():
        if _starts_from_its_own_task(config):
            model = task.build(run, **options)  # e.g. a box net, fine-tuned as one
        else:
            model = tasks.classifier(run, **options)
        if config.warm_start:
            copied = weights.warm_start_from_config_a(
                model, runs.weights_file(config.warm_start, what="warm_start"))
            print(f"Warm start from {config.warm_start}: copied {', '.join(copied)}.")
        elif config.init_from:
            new_layers, line = initialise_from(model, config)
            run = dataclasses.replace(run, new_layers=new_layers)
            print(line)
        if config.freeze_convs:
            frozen = _freeze_convs(model)
            print(f"Frozen (--freeze_convs): {frozen[0]} ... {frozen[-1]} ({len(frozen)} "
                  "layers); training fc1, fc2 and the classifier.")
        model = task.training_model(run, model,
                                    kernel_regularizer=options["kernel_regularizer"])
        task.compile(model, run)
    distribute.fit_under_multi_worker(model, strategy)
    return model, run


def _evaluated_images(model: keras.Model) -> int:
    """How many images the last `evaluate` saw: the count behind its accuracy."""
    (accuracy,) = [m for m in model.metrics if m.name == "accuracy"] or [
        m for container in model.metrics for m in getattr(container, "metrics", [])
        if m.name == "accuracy"]
    return int(keras.ops.convert_to_numpy(accuracy.count))


def train(config: runs.RunConfig, *, verbose: str | int = "auto") -> TrainingResult:
    """Runs the whole job `config` describes, in this process; returns the final
    validation. `verbose` is Keras': "auto" shows a progress bar on a terminal and one line
    per epoch elsewhere (a log file). Sets the global random seed when `config.seed` is
    given, and TensorFlow's op determinism with `config.deterministic`.

    Raises:
      RunError: settings or data that cannot train (bad sources, classes, weights to start
        from, a model_dir holding another run, a Keras backend other than TensorFlow),
        before training starts.
      callbacks.LossDiverged: training diverged; the message says what to change.
      callbacks.NoData: an epoch had no training (or validation) images: all were skipped.
      files.WriteFailed: a checkpoint could not be written (a full disk); the earlier
        ones are intact, and the same call resumes once there is space.
    """
    if keras.backend.backend() != "tensorflow":
        raise RunError(f"training runs on Keras' TensorFlow backend (tf.data, tf.distribute), "
                       f"not {keras.backend.backend()!r}: unset KERAS_BACKEND or set it to "
                       "'tensorflow'")
    if verbose == "auto":
        verbose = 1 if sys.stdout.isatty() else 2
    if config.init == "gaussian" and configs.get(config.config).name not in ("A", "A-LRN") \
            and not (config.warm_start or config.init_from):
        warnings.warn(f"config {config.config} from N(0, 0.01^2) without warm_start: the loss "
                      "stays at ln(classes) for many steps (its signal shrinks through the "
                      "layers; the paper started deeper nets from a trained A); consider "
                      "init='glorot'", stacklevel=2)
    if config.seed is not None:
        keras.utils.set_random_seed(config.seed)
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()
    policy = keras.config.dtype_policy()
    if config.mixed_precision:
        keras.config.set_dtype_policy(f"mixed_{config.mixed_precision}")
    try:
        with contextlib.ExitStack() as held:
            try:
                strategy = distribute.strategy_from_environment()
                run_dir = distribute.worker_dir(config.model_dir, strategy)
                runs.check_starting_point(config)
                found = _checked_data(config)
                if config.batch_size is None:
                    config = dataclasses.replace(
                        config, batch_size=runs.default_batch_size(found.train_images))
                run = dataclasses.replace(runs.Run.of(config, found.class_ids),
                                          directory=run_dir)
                files.check_writable(run_dir, what="model_dir")
                held.enter_context(files.locked(run_dir, what="model_dir"))
                _check_resumable(run, run_dir)
                model, run = _model(run, strategy)
                state = checkpoints.RunState()
                resumed_from = _resume(run, model, strategy, state)
            except ValueError as error:
                raise RunError(str(error)) from error
            return _fit(run, model, strategy, state, resumed_from=resumed_from,
                        verbose=verbose, val_images=found.val_images)
    finally:
        keras.config.set_dtype_policy(policy)


def _fit(run: runs.Run, model: keras.Model, strategy: tf.distribute.Strategy,
         state: checkpoints.RunState, *, resumed_from: str | None, verbose,
         val_images: int | None) -> TrainingResult:
    config, run_dir = run.config, run.directory
    run.save(run_dir)
    print(f"Training config {config.config} ({model.count_params():,} parameters, "
          f"{run.num_classes} classes) under {distribute.strategy_name(strategy)} with "
          f"{strategy.num_replicas_in_sync} replica(s), batch {config.batch_size}, learning "
          f"rate {run.initial_learning_rate():.6g} ({run.learning_rate_origin()}); "
          f"writing {run_dir}", flush=True)
    initial_epoch = state.epoch  # the restored checkpoint's, or 0
    if resumed_from:
        print(f"Resuming from the end of epoch {initial_epoch} ({resumed_from}).", flush=True)
    # With a seed, each epoch's data is a function of (seed, epoch): resumable exactly.
    epoch_counter = callbacks.EpochCounter() if config.seed is not None else None
    task = tasks.of(config)
    train_data = strategy.distribute_datasets_from_function(
        lambda context: task.train_dataset(
            config.data, global_batch_size=config.batch_size, input_context=context,
            scale=config.scale, crop_size=config.crop_size, preprocessing=config.preprocessing,
            seed=config.seed, epoch=epoch_counter and epoch_counter.variable,
        ).take(config.steps_per_epoch or -1)  # a shorter epoch, still one iterator per epoch
    )
    val_spec, val_split = config.validation_source
    cache_validation = (config.validation_steps is None and val_images is not None
                        and val_images * config.crop_size**2 * 3 * 4 <= VALIDATION_CACHE_BYTES)

    def val_pipeline(context):
        dataset = task.val_dataset(
            val_spec, split=val_split, test_scale=run.test_scale, crop_size=config.crop_size,
            batch_size=config.batch_size, preprocessing=config.preprocessing,
            input_context=context)
        return dataset.cache() if cache_validation else dataset

    val_data = strategy.distribute_datasets_from_function(val_pipeline)
    signal_stop = callbacks.SignalStop()
    run_callbacks = [signal_stop, *([epoch_counter] if epoch_counter else [])]
    run_callbacks += callbacks.callbacks(
        run, state=state, monitor=task.monitor, validation_images=val_images,
        advice=functools.partial(divergence_advice, run))
    with warnings.catch_warnings():
        # Each epoch ends when the data does (its length is unknown up front: undecodable
        # files are skipped), which Keras reports as running out of data.
        warnings.filterwarnings("ignore", message="Your input ran out of data")
        try:
            with sources.naming_damaged_records(config.data, val_spec), signal_stop.noting():
                history = model.fit(
                    train_data, initial_epoch=initial_epoch, epochs=config.epochs,
                    validation_data=val_data, validation_steps=config.validation_steps,
                    callbacks=run_callbacks, shuffle=False, verbose=verbose)
        except tf.errors.ResourceExhaustedError as error:
            raise OutOfMemory(
                f"out of memory training config {config.config} at batch {config.batch_size} "
                f"with {config.crop_size} px crops: give a smaller --batch_size (the learning "
                "rate follows it), or --mixed_precision=bfloat16; the completed epochs are "
                "kept, and the same command resumes") from error
        files.save_weights(keras.Model(model.inputs, model.outputs, name=model.name),
                           run.weights_path)  # the same layers, without the optimizer
        checkpoints.remove(run_dir)
        # The last epoch's validation saw the final weights; a run resumed after its last
        # epoch has none, and is validated now.
        results = {name.removeprefix("val_"): values[-1]
                   for name, values in history.history.items() if name.startswith("val_")
                   } or model.evaluate(val_data, steps=config.validation_steps,
                                       return_dict=True, verbose=0)
    result = TrainingResult(run, state.epoch, _evaluated_images(model), results["loss"],
                            results["accuracy"], results.get("top5"))
    print(result.summary(), flush=True)
    return result

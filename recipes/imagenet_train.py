"""Trains a VGG network the paper's way (Sect. 3.1); defaults are the paper's.

    python recipes/imagenet_train.py --config=D --model_dir=/runs/vgg16 \
        --data='tfds:imagenet2012?data_dir=/data/tfds&manual_dir=/data/manual'
    python recipes/imagenet_train.py --config=A --data=folder:/data/train \
        --val_data='folder:/data/val' --scale=256,512 --init=glorot --model_dir=/runs/a

Runs under MirroredStrategy on all visible GPUs (the default strategy on a CPU). With a
TF_CONFIG naming several workers it runs under MultiWorkerMirroredStrategy: start the same
command on every host, each with its own TF_CONFIG; each worker reads its shard of the
data, and only the chief (worker 0) writes to `--model_dir` (the others to
`--model_dir/workers/worker_<i>`, so a shared file system is safe). A run killed and
started again with the same command resumes from its last completed epoch (BackupAndRestore
in `--model_dir`). Writes `history.csv`, TensorBoard logs and `final.weights.h5`, which
`keras_vgg.vgg(config, weights=...)` and the exporter read.
"""

from __future__ import annotations

import os
import urllib.parse

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags, logging  # noqa: E402

import keras_vgg  # noqa: E402
from keras_vgg import configs, data, imagenet, sources, training, weights  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("config", "D", "Network: A, A-LRN, B, C, D, E or a variant (D-BN, B-5x5).")
flags.DEFINE_string("data", "tfds:imagenet2012", "Training source (tfds:, folder:, tfrecord:).")
flags.DEFINE_string("val_data", None, "Validation source; default: the TFDS validation split.")
flags.DEFINE_string("model_dir", None, "Checkpoints, logs and the final weights go here.")
flags.DEFINE_integer("epochs", training.PAPER_EPOCHS, "Most epochs (the paper stopped at 74).")
flags.DEFINE_integer("batch_size", training.PAPER_BATCH_SIZE, "Global batch size.")
flags.DEFINE_float("learning_rate", training.PAPER_LEARNING_RATE, "Initial learning rate.")
flags.DEFINE_float("momentum", training.PAPER_MOMENTUM, "SGD momentum.")
flags.DEFINE_float("weight_decay", training.PAPER_WEIGHT_DECAY,
                   "Caffe weight decay (gradient + wd * w), applied as L2(wd / 2).")
flags.DEFINE_float("dropout", 0.5, "Dropout after fc1 and fc2.")
flags.DEFINE_string("scale", "256", "Training scale S ('256') or jitter range ('256,512').")
flags.DEFINE_integer("crop_size", data.CROP_SIZE, "Training crop side, pixels.")
flags.DEFINE_integer("test_scale", None, "Validation Q; default S, or 384 when jittering.")
flags.DEFINE_enum("init", "gaussian", ["gaussian", "glorot"],
                  "gaussian: the paper's N(0, 1e-2); glorot: Glorot & Bengio.")
flags.DEFINE_string("warm_start", None, "Trained config-A weights: copy its first four convs "
                    "and three FC layers (the paper's initialisation of deeper nets).")
flags.DEFINE_string("init_from", None, "Weights of the same network to fine-tune "
                    "(e.g. S=384 from S=256).")
flags.DEFINE_float("width_multiplier", 1.0, "Scales conv widths and FC units (1.0: paper).")
flags.DEFINE_integer("steps_per_epoch", None,
                     "Steps per epoch, at most one pass (each epoch restarts the data).")
flags.DEFINE_integer("validation_steps", None, "Validation batches per epoch; default all.")
flags.DEFINE_integer("seed", None, "Seed of initialisation and augmentation.")
flags.DEFINE_bool("deterministic", False, "Enable TensorFlow op determinism (needs --seed).")
flags.DEFINE_enum("mixed_precision", None, ["bfloat16", "float16"],
                  "Compute in this dtype, keep float32 variables.")
flags.DEFINE_integer("plateau_patience", 2,
                     "Epochs without validation-accuracy gain before the rate drops.")
flags.DEFINE_enum("preprocessing", "caffe", list(imagenet.PREPROCESSING_MODES),
                  "Input preprocessing (caffe: mean subtraction, as the paper and Keras).")
flags.mark_flag_as_required("model_dir")


class FlagError(ValueError):
    """A flag value or combination that cannot train."""


def validation_source(train: str, val: str | None) -> tuple[str, str]:
    """The validation spec and its split name."""
    if val:
        return val, "validation"
    if train.startswith("tfds:"):  # the same dataset, without a training ?split= option
        parsed = sources.SourceSpec.parse(train)
        options = {key: value for key, value in parsed.options.items() if key != "split"}
        query = "?" + urllib.parse.urlencode(options) if options else ""
        return f"tfds:{parsed.location}{query}", "validation"
    raise FlagError("--val_data is needed for folder: and tfrecord: training data")


def check_flags() -> tuple[configs.VGGConfig, tuple[int, int], int]:
    """Everything that can be checked before building anything; raises FlagError."""
    try:
        config = configs.get(FLAGS.config)
        scale = data.parse_scale(FLAGS.scale)
    except ValueError as error:
        raise FlagError(str(error)) from error
    if FLAGS.crop_size > scale[0]:
        raise FlagError(
            f"--crop_size={FLAGS.crop_size} is larger than the training scale "
            f"S={scale[0]} (--scale={FLAGS.scale}): the crop comes from the image rescaled "
            "so its shorter side is S"
        )
    test_scale = FLAGS.test_scale or (scale[0] if scale[0] == scale[1] else
                                      (scale[0] + scale[1]) // 2)
    if test_scale < FLAGS.crop_size:
        raise FlagError(f"--test_scale={test_scale} is smaller than --crop_size")
    if FLAGS.warm_start and FLAGS.init_from:
        raise FlagError("--warm_start and --init_from exclude each other")
    for flag in ("warm_start", "init_from"):
        path = getattr(FLAGS, flag)
        if path and not os.path.isfile(path):
            raise FlagError(f"--{flag}={path}: no such file")
    if FLAGS.deterministic and FLAGS.seed is None:
        raise FlagError("--deterministic needs --seed")
    if FLAGS.batch_size < 1 or FLAGS.epochs < 1:
        raise FlagError("--batch_size and --epochs must be positive")
    validation_source(FLAGS.data, FLAGS.val_data)
    return config, scale, test_scale


def build_model(config, num_classes: int, strategy: tf.distribute.Strategy) -> keras.Model:
    with strategy.scope():
        model = keras_vgg.vgg(
            config,
            input_shape=(FLAGS.crop_size, FLAGS.crop_size, 3),
            classes=num_classes,
            dropout=FLAGS.dropout,
            kernel_initializer=FLAGS.init,
            kernel_regularizer=training.l2_for_weight_decay(FLAGS.weight_decay),
            width_multiplier=FLAGS.width_multiplier,
        )
        try:
            if FLAGS.warm_start:
                copied = weights.warm_start_from_config_a(model, FLAGS.warm_start)
                logging.info("Warm start from %s: copied %s", FLAGS.warm_start, copied)
            elif FLAGS.init_from:
                weights.load_weights(model, FLAGS.init_from)
        except ValueError as error:
            raise FlagError(str(error)) from error
        training.compile_for_training(
            model, learning_rate=FLAGS.learning_rate, momentum=FLAGS.momentum
        )
    return model


def train() -> dict[str, float]:
    """Runs the whole job; returns the final validation metrics."""
    config, scale, test_scale = check_flags()
    if FLAGS.seed is not None:
        keras.utils.set_random_seed(FLAGS.seed)
    if FLAGS.deterministic:
        tf.config.experimental.enable_op_determinism()
    if FLAGS.mixed_precision:
        keras.mixed_precision.set_global_policy(f"mixed_{FLAGS.mixed_precision}")
    try:
        strategy = training.strategy_from_environment()
    except ValueError as error:
        raise FlagError(str(error)) from error
    run_dir = training.worker_dir(FLAGS.model_dir, strategy)
    print(f"Training under {type(strategy).__name__} with {strategy.num_replicas_in_sync} "
          f"replica(s); this process writes to {run_dir}", flush=True)
    if config.name not in ("A", "A-LRN") and FLAGS.init == "gaussian" and not (
            FLAGS.warm_start or FLAGS.init_from):
        logging.warning("The paper trained deeper nets than A from --warm_start (a trained "
                        "A); from N(0, 1e-2) alone they may not converge: consider "
                        "--init=glorot.")
    num_classes = sources.open_source(FLAGS.data).num_classes
    model = build_model(config, num_classes, strategy)
    training.fit_under_multi_worker(model, strategy)
    # With a seed, each epoch's data is a function of (seed, epoch): resumable exactly.
    epoch_counter = training.EpochCounter() if FLAGS.seed is not None else None
    train_data = strategy.distribute_datasets_from_function(
        lambda context: data.train_dataset(
            FLAGS.data, global_batch_size=FLAGS.batch_size, input_context=context,
            scale=scale, crop_size=FLAGS.crop_size, preprocessing=FLAGS.preprocessing,
            seed=FLAGS.seed, epoch=epoch_counter and epoch_counter.variable,
        ).take(FLAGS.steps_per_epoch or -1)  # a shorter epoch, still one iterator per epoch
    )
    val_spec, val_split = validation_source(FLAGS.data, FLAGS.val_data)
    val_data = strategy.distribute_datasets_from_function(
        lambda context: data.eval_dataset(
            val_spec, split=val_split, protocol="center", test_scale=test_scale,
            crop_size=FLAGS.crop_size, batch_size=FLAGS.batch_size,
            preprocessing=FLAGS.preprocessing, input_context=context,
        )
    )
    callbacks = [epoch_counter] if epoch_counter else []
    callbacks += training.callbacks(run_dir, global_batch_size=FLAGS.batch_size,
                                    patience=FLAGS.plateau_patience, strategy=strategy)
    model.fit(
        train_data,
        epochs=FLAGS.epochs,
        validation_data=val_data,
        validation_steps=FLAGS.validation_steps,
        callbacks=callbacks,
        verbose=2 if os.environ.get("CI") else "auto",
    )
    final = os.path.join(run_dir, "final.weights.h5")
    model.save_weights(final)
    results = model.evaluate(val_data, steps=FLAGS.validation_steps, return_dict=True,
                             verbose=0)
    print(f"Validation (centre crop, Q={test_scale}): top-1 accuracy "
          f"{100 * results['accuracy']:.1f}% (error {100 * (1 - results['accuracy']):.1f}%), "
          f"top-5 accuracy {100 * results['top5']:.1f}%. Weights: {final}")
    return results


def main(argv):
    del argv
    try:
        train()
    except FlagError as error:
        raise SystemExit(f"imagenet_train.py: error: {error}") from error
    except training.LossDiverged as error:
        raise SystemExit(f"imagenet_train.py: {error} No final weights were written; "
                         "rerunning the command resumes from the last completed epoch.") from error


if __name__ == "__main__":
    app.run(main)

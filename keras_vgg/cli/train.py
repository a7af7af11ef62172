"""`keras-vgg-train` (also `recipes/imagenet_train.py`): trains a VGG network the paper's
way (Sect. 3.1), or fine-tunes one onto your classes: `keras_vgg.training.train` on the
`keras_vgg.runs.RunConfig` these flags describe (one flag per field, same defaults).

    keras-vgg-train --config=A --model_dir=runs/a \
        --data='tfds:imagenet2012?data_dir=/data/tfds&manual_dir=/data/manual'
    keras-vgg-train --init_from=imagenet --data=folder:mine/train \
        --val_data=folder:mine/val --model_dir=runs/mine

It ends with the run's training curves in `<model_dir>/training_curves.png` (with
matplotlib). Runs under MirroredStrategy on all visible GPUs (the default strategy on a CPU); with a
TF_CONFIG naming several workers, under MultiWorkerMirroredStrategy (start the same command
on every host). Interrupted (Ctrl-C, SIGTERM), it says which epoch is saved and exits 130
or 143; the same command resumes from there. A run that ends no better than chance exits
with status 2, its reason and the flags to try.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import sys
import typing

from absl import flags

from keras_vgg import callbacks, checkpoints, curves, files, runs, training
from keras_vgg.cli import one_line_errors, refuse_arguments, run_console

FLAGS = flags.FLAGS
PROGRAM = "keras-vgg-train"
# Exit statuses: the shell's for a process ended by SIGINT and SIGTERM (128 + signal), and
# one for a run that finished without learning.
EXIT_INTERRUPTED = 128 + signal.SIGINT
EXIT_TERMINATED = 128 + signal.SIGTERM
EXIT_NOT_LEARNT = 2


def define_flags(flag_values: flags.FlagValues = FLAGS) -> None:
    """One flag per `RunConfig` field, with its default and help; the flag's kind follows
    the field's type (`scale`, a pair, is given as 'S' or 'S_min,S_max')."""
    types = typing.get_type_hints(runs.RunConfig)
    for field in dataclasses.fields(runs.RunConfig):
        help_text, default, hint = field.metadata["help"], field.default, types[field.name]
        kinds = set(typing.get_args(hint)) - {type(None)} or {hint}
        if any(typing.get_origin(kind) is tuple for kind in kinds):  # the scale pair
            flags.DEFINE_string(field.name, default, help_text, flag_values=flag_values)
        elif "choices" in field.metadata:
            choices = [c for c in field.metadata["choices"] if c is not None]
            flags.DEFINE_enum(field.name, default, choices, help_text,
                              flag_values=flag_values)
        elif kinds == {bool}:
            flags.DEFINE_bool(field.name, default, help_text, flag_values=flag_values)
        elif kinds == {int}:
            flags.DEFINE_integer(field.name, default, help_text, flag_values=flag_values)
        elif kinds == {float}:
            flags.DEFINE_float(field.name, default, help_text, flag_values=flag_values)
        else:
            flags.DEFINE_string(field.name, default, help_text, flag_values=flag_values)
    flags.mark_flag_as_required("model_dir", flag_values=flag_values)


def config_from_flags(flag_values: flags.FlagValues = FLAGS) -> runs.RunConfig:
    """The `RunConfig` the parsed flags describe; ValueError for values that cannot train."""
    return runs.RunConfig(**{field.name: flag_values[field.name].value
                             for field in dataclasses.fields(runs.RunConfig)})


def _raise_terminated(signum, frame):
    raise callbacks.Terminated()


def interrupted_message(model_dir: str) -> str:
    """What an interrupted run has kept, and how to resume it."""
    try:
        saved = checkpoints.saved_epoch(model_dir)
    except ValueError as error:  # its checkpoint was damaged before the interrupt
        return f"{PROGRAM}: interrupted; {error}"
    if not saved:
        return (f"{PROGRAM}: interrupted before the first epoch ended, so nothing is saved; "
                "run the same command to start again.")
    return (f"{PROGRAM}: interrupted; epoch {saved} is saved in {model_dir}. Run the same "
            "command to resume from it.")


def main(argv, flag_values: flags.FlagValues = FLAGS) -> None:
    refuse_arguments(argv)
    with one_line_errors(PROGRAM):
        config = config_from_flags(flag_values)
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        with one_line_errors(PROGRAM):  # training.RunError: what cannot train
            result = training.train(config)
    except (callbacks.LossDiverged, callbacks.NoData, files.WriteFailed,
            training.OutOfMemory) as error:
        raise SystemExit(f"{PROGRAM}: {error}") from error
    except (KeyboardInterrupt, callbacks.Terminated) as interrupt:
        print(interrupted_message(config.model_dir), file=sys.stderr, flush=True)
        raise SystemExit(EXIT_INTERRUPTED if isinstance(interrupt, KeyboardInterrupt)
                         else EXIT_TERMINATED) from None
    finally:
        signal.signal(signal.SIGTERM, previous)
    png = os.path.join(result.run.directory, "training_curves.png")
    try:
        print(f"Training curves: {curves.plot(result.run, png)}")
    except ImportError:
        print(f"(no {png}: the plot needs matplotlib, pip install 'keras-vgg[plot]')")
    if result.learnt is None:
        print(f"{PROGRAM}: {result.val_images} validation images are too few to tell whether "
              f"the net learnt more than guessing among {result.run.num_classes} classes; "
              "give --val_data more of them", file=sys.stderr, flush=True)
    elif not result.learnt:
        print(f"{PROGRAM}: {result.not_learnt()}", file=sys.stderr, flush=True)
        raise SystemExit(EXIT_NOT_LEARNT)


def run() -> None:
    """The console command."""
    define_flags()
    run_console(main)

"""Trains a VGG network the paper's way (Sect. 3.1): `keras_vgg.training.train` on the
`keras_vgg.runs.RunConfig` these flags describe (one flag per field, same defaults).

    python recipes/imagenet_train.py --config=A --model_dir=runs/a \
        --data='tfds:imagenet2012?data_dir=/data/tfds&manual_dir=/data/manual'
    python recipes/imagenet_train.py --config=D --model_dir=runs/d384 --scale=384 \
        --init_from=runs/d256 --data=folder:/data/train --val_data=folder:/data/val

Runs under MirroredStrategy on all visible GPUs (the default strategy on a CPU); with a
TF_CONFIG naming several workers, under MultiWorkerMirroredStrategy (start the same command
on every host). A run stopped and started again with the same command resumes from its last
completed epoch. `--model_dir` receives `run.json`, which `recipes/imagenet_eval.py` and
`export/export_saved_model.py` read, and `final.weights.h5`.
"""

from __future__ import annotations

import dataclasses
import typing

from absl import app, flags

from keras_vgg import callbacks, files, runs, training

FLAGS = flags.FLAGS


def define_flags(flag_values: flags.FlagValues = FLAGS) -> None:
    """One flag per `RunConfig` field, with its default and help; the flag's kind follows
    the field's type (`scale`, a pair, is given as 'S' or 'S_min,S_max')."""
    types = typing.get_type_hints(runs.RunConfig)
    for field in dataclasses.fields(runs.RunConfig):
        help_text, default, hint = field.metadata["help"], field.default, types[field.name]
        kinds = set(typing.get_args(hint)) - {type(None)} or {hint}
        if typing.get_origin(hint) is tuple:  # the scale pair
            flags.DEFINE_string(field.name, ",".join(str(s) for s in sorted(set(default))),
                                help_text, flag_values=flag_values)
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


define_flags()


def config_from_flags(flag_values: flags.FlagValues = FLAGS) -> runs.RunConfig:
    """The `RunConfig` the parsed flags describe; ValueError for values that cannot train."""
    return runs.RunConfig(**{field.name: flag_values[field.name].value
                             for field in dataclasses.fields(runs.RunConfig)})


def main(argv, flag_values: flags.FlagValues = FLAGS):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}: every setting is a --flag")
    try:
        config = config_from_flags(flag_values)
    except ValueError as error:
        raise SystemExit(f"imagenet_train.py: error: {error}") from error
    try:
        training.train(config)
    except training.RunError as error:
        raise SystemExit(f"imagenet_train.py: error: {error}") from error
    except (callbacks.LossDiverged, callbacks.NoData, files.WriteFailed) as error:
        raise SystemExit(f"imagenet_train.py: {error}") from error


if __name__ == "__main__":
    app.run(main)

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
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

from keras_vgg import callbacks, runs, training  # noqa: E402

FLAGS = flags.FLAGS


def define_flags() -> None:
    """One flag per `RunConfig` field, with its default and help."""
    for field in dataclasses.fields(runs.RunConfig):
        help_text, default = field.metadata["help"], field.default
        if "choices" in field.metadata:
            choices = [c for c in field.metadata["choices"] if c is not None]
            flags.DEFINE_enum(field.name, default, choices, help_text)
        elif field.name == "scale":
            flags.DEFINE_string(field.name, ",".join(str(s) for s in sorted(set(default))),
                                help_text)
        elif "bool" in field.type:
            flags.DEFINE_bool(field.name, default, help_text)
        elif "int" in field.type:
            flags.DEFINE_integer(field.name, default, help_text)
        elif "float" in field.type:
            flags.DEFINE_float(field.name, default, help_text)
        else:
            flags.DEFINE_string(field.name, default, help_text)
    flags.mark_flag_as_required("model_dir")


define_flags()


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}: every setting is a --flag")
    try:
        config = runs.RunConfig(**{field.name: FLAGS[field.name].value
                                   for field in dataclasses.fields(runs.RunConfig)})
        training.train(config)
    except ValueError as error:
        raise SystemExit(f"imagenet_train.py: error: {error}") from error
    except callbacks.LossDiverged as error:
        raise SystemExit(f"imagenet_train.py: {error}") from error


if __name__ == "__main__":
    app.run(main)

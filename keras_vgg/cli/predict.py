"""`keras-vgg-predict`: the best classes of image files, from a training run, an export, or
a config with weights (`keras_vgg.prediction`: dense evaluation at the net's Q).

    keras-vgg-predict --model_dir=runs/mine photos/*.jpg
    keras-vgg-predict --saved_model=exported/mine/1 cat.jpg --json
    keras-vgg-predict --config=D --weights=imagenet --top_k=3 'photos/*.jpg'

Prints one line per image (`cat.jpg: tabby 52.3%, tiger cat 20.1%, ...`), or with --json
one JSON document. Files that are not images, unreadable or beyond the bounds are named on
stderr with the reason, the others still answered; the exit status is then 1.
"""

from __future__ import annotations

import contextlib
import json
import sys

from absl import app, flags

from keras_vgg import prediction
from keras_vgg.cli import net_flags, one_line_errors, run_console, shown

FLAGS = flags.FLAGS
PROGRAM = "keras-vgg-predict"


def define_flags(flag_values: flags.FlagValues = FLAGS) -> None:
    net_flags.define(flag_values)
    flags.DEFINE_integer("top_k", prediction.DEFAULT_TOP_K, "Best classes per image (at most "
                         "the net's classes).", lower_bound=1, flag_values=flag_values)
    flags.DEFINE_bool("flip", None, "Average with the mirror image (the paper's dense "
                      "evaluation; default yes, or as exported).", flag_values=flag_values)
    flags.DEFINE_bool("json", False, "Print one JSON document: a list of {image, "
                      "predictions: [{class, name, probability}]} or {image, error}.",
                      flag_values=flag_values)


def line(answer: prediction.Prediction) -> str:
    """`image: name p%, name p%, ...`."""
    return f"{shown(answer.image)}: " + ", ".join(f"{name} {100 * probability:.1f}%"
                                           for _, name, probability in answer.classes)


def main(argv, flag_values: flags.FlagValues = FLAGS) -> None:
    if len(argv) < 2:
        raise app.UsageError("name the images: files, globs ('photos/*.jpg') or folders")
    # stdout holds the answers only (a JSON document with --json): a first download of the
    # weights reports its progress on stderr.
    with one_line_errors(PROGRAM), contextlib.redirect_stdout(sys.stderr):
        paths = prediction.image_files(argv[1:])
        (net,) = net_flags.nets_from_flags(flag_values)
        predictor = prediction.Predictor(net, top_k=flag_values.top_k, flip=flag_values.flip)
    answers = []
    for answer in predictor.predict(paths):
        answers.append(answer)
        if answer.error:
            print(f"{PROGRAM}: skipped {shown(answer.image)}: {answer.error}", file=sys.stderr,
                  flush=True)
        elif not flag_values.json:
            print(line(answer), flush=True)
    if flag_values.json:
        print(json.dumps([answer.to_json() for answer in answers], indent=1))
    if any(answer.error for answer in answers):
        raise SystemExit(1)


def run() -> None:
    """The console command."""
    define_flags()
    run_console(main)

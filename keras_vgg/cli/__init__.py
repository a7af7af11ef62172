"""The command-line tools, installed as console commands (`pip install keras-vgg`); the
scripts in `recipes/` and `export/` run the same code.

    keras-vgg-train      train or fine-tune a net (`keras_vgg.training`)
    keras-vgg-eval       the paper's test protocols and ConvNet fusion (`keras_vgg.evaluation`)
    keras-vgg-predict    the best classes of image files (`keras_vgg.prediction`)
    keras-vgg-export     a SavedModel for TF-Serving (`keras_vgg.serving`)
    keras-vgg-transfer   Appendix B: a linear SVM on a net's descriptors (`keras_vgg.transfer`)

Each module has `define_flags(flag_values)` and `main(argv, flag_values)`, which tests call
in-process, and `run()`, the console command (`run_console`). Bad settings end in one line
on stderr that names the problem (exit 1), never a traceback.
"""

from __future__ import annotations

import contextlib
import os
import sys

from absl import app

# A shell's status for a writer whose reader went away (128 + SIGPIPE).
EXIT_BROKEN_PIPE = 141


def run_console(main) -> None:
    """Runs a command's `main` as its console command, under absl. Output cut short by its
    reader (`keras-vgg-predict ... | head`) ends the command quietly, as Unix tools do."""
    try:
        app.run(main)
    except BrokenPipeError:
        # Python would fail again flushing stdout at exit: the rest goes nowhere.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(EXIT_BROKEN_PIPE)


def shown(name: str) -> str:
    """A file name as a line of output shows it: as is, or quoted with its control
    characters escaped (a newline as \\n), so that a name cannot forge a line."""
    return name if name.isprintable() else repr(name)


def refuse_arguments(argv: list[str]) -> None:
    """Every setting of these commands is a flag: anything else is a usage error."""
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}: every setting is a --flag")


@contextlib.contextmanager
def one_line_errors(program: str, *errors: type[Exception]):
    """Ends the command with `<program>: error: <message>` (exit 1) for a ValueError, or
    one of `errors`: settings or files that cannot be used, said in one line."""
    try:
        yield
    except (ValueError, *errors) as error:
        raise SystemExit(f"{program}: error: {error}") from error

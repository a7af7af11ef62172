"""Progress bars for the long loops (evaluation, descriptors, prediction): redrawn in place
on a terminal, one line when done in a log file, as Keras' own `fit` does."""

from __future__ import annotations

import sys

import keras


def bar(count: int | None, *, unit: str = "image", enabled: bool = True
        ) -> keras.utils.Progbar | None:
    """A Keras progress bar over `count` items (None: unknown), or None if not `enabled`."""
    if not enabled:
        return None
    return keras.utils.Progbar(count, unit_name=unit, verbose=1 if sys.stdout.isatty() else 2)

"""Writing the files a run keeps so that a crash or a full disk never leaves a damaged one.

Each file, or directory of files, is written beside its destination under a temporary
name and renamed over it when complete (a rename within a directory is atomic), so a reader
sees the old one or the new one, never part of one. Before weights are written, the free
space is checked against their size: HDF5 writing into a full disk can fail in ways that
are hard to recover from, and stopping before the write keeps every earlier file intact.

A full disk stops the run with a one-line message; when space is freed, the same command
resumes from the files left intact.

A run directory is held by one process at a time (`locked`), and the JSON files a run keeps
are read with one reader (`read_json`) that names the file whatever is wrong with it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil
import socket
import time
from collections.abc import Iterator

import keras
import numpy as np

# Room kept beyond the arrays' own bytes: HDF5's metadata, and the log lines written
# beside them.
SPACE_MARGIN_BYTES = 1 << 20
SPACE_MARGIN_FRACTION = 0.05
LOCK_FILE = ".lock"
# JSON files a run keeps are a few kilobytes; a larger one is not one of them.
MAX_JSON_BYTES = 16 << 20


class WriteFailed(OSError):
    """A run's file could not be written (the disk is full, or the directory is not
    writable). The file it would have replaced is intact; the message says what to do."""

    def __str__(self) -> str:
        return self.strerror


def check_writable(directory: str, *, what: str) -> None:
    """Creates `directory` if needed; raises ValueError naming `what` unless it can be
    written into. URLs (gs://...) are left to TensorFlow's file systems."""
    if "://" in directory:
        return
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise ValueError(f"{what} {directory!r} is not a directory")
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as error:
        raise ValueError(f"{what} {directory!r} cannot be created ({error.strerror})") from error
    if not os.access(directory, os.W_OK | os.X_OK):
        raise ValueError(f"{what} {directory!r} is not writable")


def weights_bytes(model: keras.Model) -> int:
    """The bytes of `model.save_weights`' arrays: the model's, and its optimizer's when built."""
    variables = list(model.weights)
    optimizer = getattr(model, "optimizer", None)
    if optimizer is not None and optimizer.built:
        variables += list(optimizer.variables)
    return sum(int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize for v in variables)


def _partial_path(path: str) -> str:
    """A temporary name beside `path` with the same suffix (Keras checks `.weights.h5`)."""
    directory, name = os.path.split(path)
    stem, dot, suffix = name.partition(".")
    return os.path.join(directory, f".{stem}.partial{dot}{suffix}")


@contextlib.contextmanager
def _replacing(path: str, *, needed_bytes: int, is_directory: bool = False) -> Iterator[str]:
    """Yields a temporary path to write (a file, or a created directory); renames it over
    `path` when the block succeeds, removes it when not. Raises WriteFailed when the space
    or the write fails."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    needed = int(needed_bytes * (1 + SPACE_MARGIN_FRACTION)) + SPACE_MARGIN_BYTES
    free = shutil.disk_usage(directory).free
    if free < needed:
        raise WriteFailed(
            errno.ENOSPC,
            f"no space left for {path}: it needs about {needed / 2**20:.1f} MiB and "
            f"{directory} has {free / 2**20:.1f} MiB free. The files written before are "
            "intact: free some space and run the same command again to resume")
    partial = _partial_path(path)
    try:
        if is_directory:
            shutil.rmtree(partial, ignore_errors=True)  # left by a process killed writing it
            os.makedirs(partial)
        yield partial
        if is_directory and os.path.isdir(path):
            shutil.rmtree(path)
        os.replace(partial, path)
    except OSError as error:
        full = error.errno == errno.ENOSPC or "No space left" in str(error)
        raise WriteFailed(
            errno.ENOSPC if full else error.errno,
            f"cannot write {path} ({'the disk is full' if full else error}). The files "
            "written before are intact: "
            f"{'free some space' if full else 'fix the cause'} and run the same command "
            "again to resume") from error
    finally:
        if is_directory:
            shutil.rmtree(partial, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                os.remove(partial)


def replaced_directory(path: str, *, needed_bytes: int) -> contextlib.AbstractContextManager[str]:
    """A context yielding a new, empty directory to fill; it becomes `path` (replacing any
    directory there) in one rename when the block succeeds, and is removed when not.
    `needed_bytes` is what the block will write, checked against the free space first.

    Raises:
      WriteFailed: the space is lacking or a write failed; nothing at `path` changed.
    """
    return _replacing(path, needed_bytes=needed_bytes, is_directory=True)


def save_weights(model: keras.Model, path: str) -> None:
    """`model.save_weights(path)` (path ends with `.weights.h5`), atomically."""
    with _replacing(path, needed_bytes=weights_bytes(model)) as partial:
        model.save_weights(partial)


def write_text(path: str, text: str) -> None:
    """`text` into `path` (UTF-8), atomically."""
    with _replacing(path, needed_bytes=len(text.encode())) as partial:
        with open(partial, "w", encoding="utf8") as file:
            file.write(text)


def write_json(path: str, document) -> None:
    """`document` as JSON into `path`, atomically."""
    write_text(path, json.dumps(document, indent=1))


def read_json(path: str, *, what: str = "file"):
    """The JSON document in `path`; ValueError naming `what` and the file when it cannot be
    read, is not UTF-8, is not JSON, is larger than `MAX_JSON_BYTES`, nests too deeply or
    holds an integer too long to convert."""
    try:
        if os.path.getsize(path) > MAX_JSON_BYTES:
            raise ValueError(f"larger than {MAX_JSON_BYTES >> 20} MiB")
        with open(path, encoding="utf8") as file:
            return json.load(file)
    except OSError as error:
        raise ValueError(f"{what} {path} cannot be read ({error.strerror})") from error
    except UnicodeDecodeError as error:
        raise ValueError(f"{what} {path} is not UTF-8 text ({error.reason} at byte "
                         f"{error.start})") from error
    except RecursionError as error:
        raise ValueError(f"{what} {path} nests too deeply to be read") from error
    except ValueError as error:  # json.JSONDecodeError, or an integer beyond Python's limit
        raise ValueError(f"{what} {path} is not valid JSON: {error}") from error


@contextlib.contextmanager
def locked(directory: str, *, what: str) -> Iterator[None]:
    """Holds `directory` for this process while the block runs: an advisory lock on its
    `.lock` file, which says who holds it.

    The operating system releases the lock when the process ends, however it ends, so the
    file a killed run leaves behind does not block the run that resumes it. Directories
    behind URLs (gs://...) are not locked.

    Raises:
      ValueError: another process holds `directory`; the message names it.
    """
    if "://" in directory:
        yield
        return
    path = os.path.join(directory, LOCK_FILE)
    with open(path, "a+", encoding="utf8") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            handle.seek(0)
            holder = handle.read(200).strip() or "another process"
            raise ValueError(f"{what} {directory} is in use by another run ({holder}); wait "
                             f"for it to end, or give another {what}") from error
        try:
            handle.seek(0)
            handle.truncate()
            handle.write(f"process {os.getpid()} on {socket.gethostname()}, since "
                         f"{time.strftime('%Y-%m-%d %H:%M:%S')}")
            handle.flush()
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)

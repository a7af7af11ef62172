"""Several absl programs in one process, one after the other: each defines its flags at
import, which absl allows once a name. Kept apart from conftest so that a fresh process
(the benchmarks' shared one) can import it without pytest."""

import contextlib
import sys
from pathlib import Path

from absl import flags


@contextlib.contextmanager
def forgotten_afterwards(directory: Path):
    """Runs the block; then every flag is back at its default, and the modules the block
    imported from `directory` are forgotten with their flags (and their package's attribute
    naming them), so that the next program can define flags of the same names."""
    imported = set(sys.modules)
    try:
        yield
    finally:
        flags.FLAGS.unparse_flags()
        by_module = flags.FLAGS.flags_by_module_dict()
        for name in set(sys.modules) - imported:
            if Path(getattr(sys.modules[name], "__file__", None) or "/").parent != directory:
                continue
            for flag in list(by_module.get(name, [])):
                delattr(flags.FLAGS, flag.name)
            del sys.modules[name]
            package, _, attribute = name.rpartition(".")
            if hasattr(sys.modules.get(package), attribute):
                delattr(sys.modules[package], attribute)

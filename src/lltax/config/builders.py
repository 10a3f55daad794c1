"""Your own model or dataset builder, named in a config as 'package.module:function'."""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Iterable

IMPORT_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$")


def import_builder(kind: str, name: str, registered: Iterable[str]) -> Callable:
    """The callable ``name`` = 'package.module:function' names; ``kind`` ("model", "dataset")
    and the ``registered`` names only shape the error messages."""
    if not IMPORT_PATH.fullmatch(name):  # fullmatch: `$` alone lets a final newline through
        raise ValueError(f"unknown {kind} {name!r}; choose one of {sorted(registered)} or name a builder as 'package.module:function'")
    module_name, function_name = name.split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise ValueError(f"{kind} {name!r}: cannot import {module_name!r} ({e}); install it or put it on PYTHONPATH") from e
    except Exception as e:  # the module itself fails to import: its own bug, named in one line
        raise ValueError(f"{kind} {name!r}: importing {module_name!r} raised {type(e).__name__}: {e}") from e
    builder = getattr(module, function_name, None)
    if not callable(builder):
        raise ValueError(f"{kind} {name!r}: {module_name} has no callable {function_name!r}")
    return builder

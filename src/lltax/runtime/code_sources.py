"""The lltax source files behind each command, derived from the imports (for the workflow).

Snakemake reruns a job when one of its declared inputs changes, but it does not know which
modules a job imports. The rules therefore declare, as inputs, exactly the files this module
finds: the command's module, ``lltax.cli`` (every job runs through it) and every ``lltax``
module they import, transitively, at module level or inside a function (a lazy import is
still an import of the job), with each package's ``__init__.py``. Only the standard library is
used: the Snakefile calls this when it builds the DAG.

A module reached only through a string (``importlib.import_module(name)``) is found when the
string is a literal; ``lltax.cli``'s table of commands is read for the command's own module.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import hashlib
from pathlib import Path

from lltax.commands import COMMANDS

PACKAGE = "lltax"
PACKAGE_DIR = Path(__file__).resolve().parents[1]


def module_file(name: str, root: Path = PACKAGE_DIR) -> Path | None:
    """The file of lltax module ``name`` ('lltax.metrics.cka'), or None if there is none."""
    parts = name.split(".")
    if parts[0] != PACKAGE:
        return None
    base = root.joinpath(*parts[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _module_name(path: Path, root: Path) -> str:
    relative = path.relative_to(root).with_suffix("")
    parts = [PACKAGE, *relative.parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def direct_imports(path: Path, root: Path = PACKAGE_DIR) -> set[str]:
    """Names of the lltax modules one file imports anywhere in its body."""
    status = path.stat()  # parsed once per version of the file: the commands share most modules
    return set(_direct_imports(path, root, status.st_mtime_ns, status.st_size))


@functools.lru_cache(maxsize=4096)
def _direct_imports(path: Path, root: Path, mtime_ns: int, size: int) -> frozenset[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    this = _module_name(path, root)
    package = this if path.name == "__init__.py" else this.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from . import x / from .a import b
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)  # `from lltax.storage import checkpoint`
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module":
            if node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
                found.add(node.args[0].value)
    return frozenset(name for name in found if name.split(".")[0] == PACKAGE and module_file(name, root) is not None)


def _with_parents(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def closure(modules: list[str], root: Path = PACKAGE_DIR) -> list[Path]:
    """Files of ``modules`` and of everything they import, transitively, parents included; sorted."""
    seen: set[str] = set()
    stack = [parent for name in modules for parent in _with_parents(name)]
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        path = module_file(name, root)
        if path is None:
            raise ValueError(f"lltax module {name!r} has no source file under {root}")
        for imported in direct_imports(path, root):
            stack.extend(parent for parent in _with_parents(imported) if parent not in seen)
    return sorted(module_file(name, root) for name in seen)


@functools.cache
def command_sources(command: str, root: Path = PACKAGE_DIR) -> tuple[Path, ...]:
    """The source files a job of ``lltax <command>`` runs: cli.py, the command's module, and their imports."""
    if command not in COMMANDS:
        raise ValueError(f"unknown lltax command {command!r}; choose one of {sorted(COMMANDS)}")
    # cli.py's table of commands is the one dynamic import; every other module of that table
    # is imported only when its own command runs.
    return tuple(closure(["lltax.cli", COMMANDS[command]], root))


def relative_sources(command: str, root: Path = PACKAGE_DIR) -> list[str]:
    """command_sources as paths relative to the package folder ('metrics/cka.py')."""
    return [path.relative_to(root).as_posix() for path in command_sources(command, root)]


def sources_sha256(command: str, root: Path = PACKAGE_DIR) -> str:
    """SHA-256 of the source files a job of ``lltax <command>`` runs (their paths and bytes)."""
    digest = hashlib.sha256()
    for path in command_sources(command, root):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


# The code of the command this process runs, hashed when it started (set by lltax.cli.run):
# records name it (runtime.code), so a record whose code was edited while its job ran, or since,
# is seen when it is merged (lltax.results.records.check_code).
running: dict[str, str] = {}


@contextlib.contextmanager
def command_running(command: str):
    """Within the block, ``running`` names ``command`` and the hash of its sources now."""
    running.update(command=command, sources_sha256=sources_sha256(command))
    try:
        yield
    finally:
        running.clear()


if __name__ == "__main__":  # python -m lltax.runtime.code_sources: each command's sources
    for name in COMMANDS:
        print(f"{name}: {' '.join(relative_sources(name))}")

"""lltax.runtime.code_sources: the source files behind each command, derived from the imports; and the
house rules the derivation relies on (no import circle, small modules)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lltax.cli import COMMANDS
from lltax.runtime.code_sources import PACKAGE_DIR, closure, command_sources, direct_imports, module_file

MODULES = {
    "__init__.py": "",
    "a.py": "import lltax.b\nfrom lltax import c\n",
    "b.py": "from .sub.d import thing\n",
    "c.py": "def lazy():\n    from lltax.e import x\n    import importlib\n    importlib.import_module('lltax.f')\n",
    "sub/__init__.py": "",
    "sub/d.py": "from . import g\nimport os\nfrom lltax.missing_module import nothing\n",
    "e.py": "",
    "f.py": "",
    "g.py": "raise RuntimeError('never executed: imports are read, not run')\n",
    "sub/g.py": "",
    "unused.py": "import lltax.a\n",
}


@pytest.fixture
def package(tmp_path):
    root = tmp_path / "lltax"
    for name, text in MODULES.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_imports_of_every_form_are_found_transitively(package):
    """Absolute, `from lltax import module`, relative, lazy (inside a function) and literal
    import_module imports, with each package's __init__; nothing that is not imported."""
    files = {path.relative_to(package).as_posix() for path in closure(["lltax.a"], package)}
    assert files == {"__init__.py", "a.py", "b.py", "c.py", "e.py", "f.py", "sub/__init__.py", "sub/d.py", "sub/g.py"}
    assert direct_imports(package / "sub" / "d.py", package) == {"lltax.sub", "lltax.sub.g"}  # os and a missing module are not lltax files
    assert module_file("lltax.sub", package) == package / "sub" / "__init__.py"
    assert module_file("numpy", package) is None


def test_a_missing_module_is_named(package):
    with pytest.raises(ValueError, match="'lltax.nowhere' has no source file"):
        closure(["lltax.nowhere"], package)


def test_every_command_runs_through_the_cli_and_its_job_module():
    for command, module in COMMANDS.items():
        files = {path.relative_to(PACKAGE_DIR).as_posix() for path in command_sources(command)}
        assert {"__init__.py", "cli.py", "jobs/__init__.py", module_file(module).relative_to(PACKAGE_DIR).as_posix()} <= files, command
    with pytest.raises(ValueError, match="unknown lltax command"):
        command_sources("sharpen")


def test_the_cka_perturbation_and_the_landscape_recompute_are_where_their_jobs_look():
    """The cases that once went wrong: mixup is CKA's alone; the landscape uses bezier.py."""
    sources = {command: {p.relative_to(PACKAGE_DIR).as_posix() for p in command_sources(command)} for command in COMMANDS}
    assert "metrics/mixup.py" in sources["cka"] and "metrics/mixup.py" not in sources["train"]
    assert "metrics/bezier.py" in sources["landscape"]
    assert not any(path.startswith("figures/") for path in sources["train"])  # training does not depend on the figures
    assert not any(path.startswith(("metrics/", "models/")) for path in sources["classify"])


def _all_modules() -> dict[str, Path]:
    return {
        ".".join(["lltax", *path.relative_to(PACKAGE_DIR).with_suffix("").parts]).removesuffix(".__init__"): path
        for path in sorted(PACKAGE_DIR.rglob("*.py"))
    }


def test_no_import_circle():
    """The static import graph of the package, lazy imports included, has no cycle."""
    modules = _all_modules()
    graph = {name: {m for m in direct_imports(path) if m != name} for name, path in modules.items()}
    # A package's __init__ is run by importing any module inside it: not an edge of a circle.
    graph = {name: {m for m in edges if not name.startswith(m + ".")} for name, edges in graph.items()}
    state: dict[str, int] = {}

    def visit(name: str, trail: list[str]) -> None:
        state[name] = 1
        for other in sorted(graph.get(name, ())):
            if state.get(other) == 1:
                raise AssertionError("import circle: " + " -> ".join([*trail[trail.index(other) :], other]))
            if other not in state:
                visit(other, [*trail, other])
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])


def test_no_module_is_above_350_lines():
    long = {name: n for name, path in _all_modules().items() if (n := len(path.read_text().splitlines())) > 350}
    assert not long, long

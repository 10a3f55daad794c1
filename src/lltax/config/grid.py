"""Grid cells, their paths and the canonical spelling of values.

A grid cell is one combination of the grid axes. Its artifacts live in a hive-style folder,
one level per axis in the fixed order of ``AXES`` (``width=16/batch_size=128/...``), so any
path parses back into exact coordinates. Floats get one canonical spelling
(``canonical_value``) so that paths, netCDF coordinates and config values round-trip.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import string
from pathlib import Path
from typing import Any

from lltax.contract import AXES, INTEGER_AXES, ConfigError


def canonical_value(value: Any) -> int | float:
    """One spelling per number: ints stay ints, floats are rounded to 12 significant digits.

    ``0.1 + 0.2`` and ``0.3`` map to the same float, and ``repr`` of the result is the
    shortest string that parses back to it, which is what paths and coordinates use.
    """
    if isinstance(value, bool):
        raise ConfigError(f"expected a number, got boolean {value!r}")
    if isinstance(value, int):
        return value
    return float(f"{float(value):.12g}")


def format_value(value: Any) -> str:
    return repr(canonical_value(value))


def expand_grid(grid: dict) -> list[dict]:
    """All cells of the grid as dicts {axis: canonical value}, in AXES order."""
    values = [[canonical_value(v) for v in grid[axis]] for axis in AXES]
    return [dict(zip(AXES, combo)) for combo in itertools.product(*values)]


def cell_path(cell: dict) -> str:
    """'width=16/batch_size=128/...' for a cell (all axes, fixed order)."""
    return "/".join(f"{axis}={format_value(cell[axis])}" for axis in AXES)


def parse_cell_path(path: str) -> dict:
    """Inverse of cell_path; also accepts a longer path and picks out the axis levels.

    Extra levels (``seed=0``, ``pair=0-1``) are returned too, as ints / (int, int).
    """
    coords: dict[str, Any] = {}
    for part in Path(path).parts:
        if "=" not in part:
            continue
        key, _, text = part.partition("=")
        try:
            if key in INTEGER_AXES or key == "seed":
                coords[key] = int(text)
            elif key in AXES:
                coords[key] = canonical_value(float(text))
            elif key == "pair":
                a, _, b = text.partition("-")
                coords["pair"] = (int(a), int(b))
        except ValueError:
            kind = "an integer" if key in INTEGER_AXES or key == "seed" else "a pair A-B of seeds" if key == "pair" else "a number"
            raise ValueError(f"path {path!r}: {key}={text!r} is not {kind}") from None
    missing = [axis for axis in AXES if axis not in coords]
    if missing:
        raise ValueError(f"path {path!r} does not name grid axes {missing}")
    return coords


# The Snakemake wildcard {cell} must match exactly one cell folder.
CELL_REGEX = "/".join(f"{axis}=[^/]+" for axis in AXES)


def seed_pairs(seeds: list[int], mode: str) -> list[tuple[int, int]]:
    """Seed pairs for pairwise metrics: 'first', 'consecutive' or 'all' unordered pairs."""
    seeds = list(seeds)
    if mode == "first":
        return [(seeds[0], seeds[1])] if len(seeds) >= 2 else []
    if mode == "consecutive":
        return list(zip(seeds[:-1], seeds[1:]))
    if mode == "all":
        return list(itertools.combinations(seeds, 2))
    raise ConfigError(f"config key 'curves.pairs': {mode!r} is not allowed; choose one of ['first', 'consecutive', 'all']")


def canonical_path(path: str) -> str:
    """One spelling per folder: normalized, relative to the working directory when inside it
    (``data``, ``./data/`` and its absolute path are all ``data``), absolute otherwise, and
    absolute too where the relative spelling would start with ``-`` (an option to every job)."""
    absolute = os.path.abspath(path)
    relative = os.path.relpath(absolute)
    outside = relative == ".." or relative.startswith(".." + os.sep)
    return absolute if outside or relative.startswith("-") else relative


def canonical_json(obj: Any) -> str:
    """Sorted-key, compact JSON: the form config sections take as Snakemake params."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def config_hash(obj: Any) -> str:
    return hashlib.sha256(canonical_json(obj).encode()).hexdigest()[:16]


def checkpoint_file(template: str, cell: dict, seed: int) -> str:
    """The file a ``checkpoints.path`` template names for one cell and seed, absolute."""
    values = {axis: int(cell[axis]) if axis in INTEGER_AXES else float(cell[axis]) for axis in AXES}  # as a path parses back
    return os.path.abspath(os.path.expanduser(template.format(**values, seed=seed)))


def check_checkpoint_template(template: str, grid: dict, seeds: list[int]) -> None:
    """A ``checkpoints.path`` template names only grid axes and ``seed``, formats every cell, and
    gives each cell and seed a file of its own."""
    key = "config key 'checkpoints.path'"
    if not template.strip():
        raise ConfigError(f"{key}: {template!r} names no file; give a template such as 'runs/w{{width}}/seed{{seed}}.pt', or null to train")
    try:
        fields = {name.split(".")[0].split("[")[0] for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as e:
        raise ConfigError(
            f"{key}: {template!r} is not a format template ({e}); write fields as {{width}}, literal braces as {{{{ }}}}"
        ) from None
    unknown = sorted(fields - {*AXES, "seed"})
    if unknown:
        raise ConfigError(f"{key}: unknown field(s) {unknown} in {template!r}; fields are the grid axes {list(AXES)} and seed")
    if "" in fields:
        raise ConfigError(f"{key}: {template!r} has a positional field {{}}; name it, e.g. {{seed}}")
    needed = (["seed"] if len(seeds) > 1 else []) + [axis for axis in AXES if len(grid[axis]) > 1]
    absent = [name for name in needed if name not in fields]
    if absent:
        raise ConfigError(f"{key}: {template!r} does not name {absent}, which take several values: cells or seeds would share one file")
    files: dict[str, tuple] = {}
    real_files: dict[str, tuple] = {}
    for cell in expand_grid(grid):
        for seed in seeds:
            try:
                path = checkpoint_file(template, cell, seed)
            except (ValueError, TypeError, IndexError, KeyError) as e:
                raise ConfigError(f"{key}: {template!r} cannot format cell {cell_path(cell)} seed {seed} ({e})") from None
            if path in files:
                raise ConfigError(f"{key}: {template!r} names {path} for two cells or seeds ({files[path]} and {(cell_path(cell), seed)})")
            files[path] = (cell_path(cell), seed)
            real = os.path.realpath(path)  # links to one file are one model
            if real in real_files and os.path.exists(real):
                raise ConfigError(
                    f"{key}: {template!r} names {path}, the same file as {real_files[real][0]} ({real}), for two cells or seeds "
                    f"({real_files[real][1]} and {(cell_path(cell), seed)})"
                )
            real_files[real] = (path, (cell_path(cell), seed))


def select_cells(cells: list[dict], selection: str | list[dict], what: str = "landscape.cells") -> list[dict]:
    """The cells a selection names: ``"all"``, or partial cells ({axis: value}; a cell matches
    when every named axis has that value). A selector that names an unknown axis, or that no
    cell of the grid matches, is an error that names it."""
    if selection == "all":
        return list(cells)
    chosen = []
    for selector in selection:
        unknown = sorted(set(selector) - set(AXES))
        if unknown:
            raise ConfigError(f"{what}: {selector} names unknown axes {unknown}; the grid axes are {list(AXES)}")
        wanted = {axis: canonical_value(value) for axis, value in selector.items()}
        matches = [cell for cell in cells if all(cell[axis] == value for axis, value in wanted.items())]
        if not matches:
            raise ConfigError(f"{what}: {selector} matches no cell of the grid")
        chosen += [cell for cell in matches if cell not in chosen]
    return [cell for cell in cells if cell in chosen]  # grid order


# Axes two compared models may differ in: the same network and data, trained differently.
COMPARABLE_AXES = ("batch_size", "learning_rate", "weight_decay")


def compared_cells(cells: list[dict], pairs: list[list[dict]], what: str = "landscape.compare") -> list[tuple[dict, dict, str]]:
    """(cell A, cell B, name) for each pair [A, B] of partial cells: every cell matching A, with
    the cell that has B's values on B's axes and A's elsewhere. ``name`` ("vs_batch_size=512")
    spells B's values where they differ from A's; a cell that already has B's values is
    skipped. The two may differ only in ``COMPARABLE_AXES`` (an interpolation needs one network
    and one dataset)."""
    compared = []
    for first, second in pairs:
        found = 0
        for cell in select_cells(cells, [first], what):
            select_cells(cells, [second], what)  # unknown axes or no match: the same error as a selection
            other = {**cell, **{axis: canonical_value(value) for axis, value in second.items()}}
            differing = [axis for axis in AXES if other[axis] != cell[axis]]
            fixed = [axis for axis in differing if axis not in COMPARABLE_AXES]
            if fixed:
                raise ConfigError(
                    f"{what}: {first} vs {second} compares cells that differ in {fixed}; compared models share the network "
                    f"and data and may differ only in {list(COMPARABLE_AXES)} (put the others in both partial cells)"
                )
            if not differing:  # this cell already has B's values: nothing to compare it with
                continue
            found += 1
            if other not in cells:
                raise ConfigError(
                    f"{what}: {first} vs {second}: the counterpart {cell_path(other)} of {cell_path(cell)} is not in the grid"
                )
            name = "vs_" + ",".join(f"{axis}={format_value(other[axis])}" for axis in differing)
            if (cell, other, name) not in compared:
                compared.append((cell, other, name))
        if not found:
            raise ConfigError(f"{what}: {first} vs {second} compares every matching cell with itself; name what differs in B")
    return compared

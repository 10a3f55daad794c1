"""The shape of every table: the full grid of a config, its coordinates and cells.

Dimensions: one per grid axis in ``lltax.contract.AXES`` order (size-1 axes kept), ``seed``,
``pair`` (an integer index with coordinates ``seed_a(pair)``, ``seed_b(pair)``: all unordered
seed pairs a < b, sorted; a MultiIndex cannot be written to netCDF) and ``t`` (curve points).
Float coordinates use the canonical spelling of ``lltax.config.schema.canonical_value``.
"""

from __future__ import annotations

import copy
import functools
import itertools
import math
from typing import Any, NamedTuple

import numpy as np
import xarray as xr

import lltax
from lltax.config.grid import canonical_json, canonical_value, cell_path, seed_pairs
from lltax.config.schema import ConfigError, load_schema
from lltax.contract import (
    AXES,
    COORDINATE_ATTRS,
    CURVE_PROFILES,
    CURVE_SCALARS,
    INTEGER_AXES,
    METRIC_JOBS,
    METRICS,
    VARIABLE_ATTRS,
)


# The record file of each metric and {dataset variable: key in it} (a dotted key is nested), by
# where its records are (lltax.contract.METRIC_JOBS): one file per seed under <cell>/seed=S/;
# one per cell under <cell>/ holding a value per seed pair; one per cell with one value.
def _files(scope: str) -> dict[str, tuple[str, dict[str, str]]]:
    return {job.metric: (job.record, {name: v.key for name, v in job.variables.items()}) for job in METRIC_JOBS if job.scope == scope}


PER_SEED_FILES = _files("seed")
PER_PAIR_FILES = _files("pairs")
PER_CELL_FILES = _files("cell")
# Keys a record holds for some tasks only; where it has none, the variable is NaN: BLEU is
# written for translation tasks alone (lltax.metrics.bleu), image records keep their four numbers.
OPTIONAL_KEYS = frozenset({"final.test_bleu"})


class Layout(NamedTuple):
    """The shape of every table: grid values per axis, seeds, seed pairs, curve points."""

    grid: dict[str, list]
    seeds: list[int]
    pairs: list[tuple[int, int]]
    points: list[float]
    curve_pairs: list[tuple[int, int]]
    checkpoint: str | None = None  # the seeds' checkpoint file name (model.pt / checkpoint.json); None = either


@functools.cache
def _schema_curve_defaults() -> tuple[tuple[str, Any], ...]:
    # Parsing the schema YAML takes ~0.4 s; once per process is enough.
    properties = load_schema()["properties"]["curves"]["properties"]
    return tuple((key, spec["default"]) for key, spec in properties.items() if "default" in spec)


def _curve_defaults() -> dict[str, Any]:
    return {key: copy.deepcopy(value) for key, value in _schema_curve_defaults()}


def table_layout(config: dict) -> Layout:
    """The full grid of a (resolved) config; extra keys are ignored.

    Needs ``grid`` (every axis of AXES) and ``seeds``; ``curves.points``, ``curves.pairs`` and
    ``curves.enabled`` fall back to the schema defaults.
    """
    grid = config.get("grid")
    if not isinstance(grid, dict):
        raise ConfigError("config has no 'grid' section; pass the resolved config (lltax.config.schema.validate_config)")
    missing = [axis for axis in AXES if axis not in grid]
    if missing:
        raise ConfigError(f"config 'grid' lacks axes {missing}; pass the resolved config, which lists every axis")
    if "seeds" not in config:
        raise ConfigError("config has no 'seeds'; pass the resolved config (a list of seeds)")
    seeds = config["seeds"]
    integer = lambda s: isinstance(s, int) and not isinstance(s, bool)  # noqa: E731
    if not (integer(seeds) and seeds >= 0) and not (isinstance(seeds, list) and all(integer(s) and s >= 0 for s in seeds)):
        raise ConfigError(f"config key 'seeds': {seeds!r} is neither a count nor a list of seeds (integers >= 0)")
    for axis in AXES:
        values = grid[axis]
        if not isinstance(values, list) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values
        ):
            raise ConfigError(f"config key 'grid.{axis}': {values!r} is not a list of finite numbers")
    seeds = list(range(seeds)) if isinstance(seeds, int) else seeds
    curves = _curve_defaults()
    curves.update(config.get("curves") or {})
    points = sorted({canonical_value(float(t)) for t in curves["points"]})
    # Curve pairs in the config's seed order (that names their folders, pair=A-B); the
    # coordinates themselves are sorted.
    curve_pairs = seed_pairs(seeds, curves["pairs"]) if curves["enabled"] else []
    seeds = sorted(seeds)
    return Layout(
        grid={axis: sorted(canonical_value(v) for v in grid[axis]) for axis in AXES},
        seeds=seeds,
        pairs=list(itertools.combinations(seeds, 2)),
        points=points,
        curve_pairs=curve_pairs,
        checkpoint=config.get("checkpoint"),
    )


def coordinates(layout: Layout) -> dict[str, Any]:
    """Coordinates of the full grid, with units and long_name attributes."""
    coords: dict[str, Any] = {
        axis: (axis, np.asarray(values, dtype=np.int64 if axis in INTEGER_AXES else np.float64)) for axis, values in layout.grid.items()
    }
    coords["seed"] = ("seed", np.asarray(layout.seeds, dtype=np.int64))
    coords["pair"] = ("pair", np.arange(len(layout.pairs), dtype=np.int64))
    coords["seed_a"] = ("pair", np.asarray([a for a, _ in layout.pairs], dtype=np.int64))
    coords["seed_b"] = ("pair", np.asarray([b for _, b in layout.pairs], dtype=np.int64))
    coords["t"] = ("t", np.asarray(layout.points, dtype=np.float64))
    return {
        name: xr.Variable(dims, values, attrs=dict(zip(("units", "long_name"), COORDINATE_ATTRS[name])))
        for name, (dims, values) in coords.items()
    }


def variable(name: str, dims: tuple[str, ...], values: np.ndarray) -> xr.Variable:
    units, long_name = VARIABLE_ATTRS[name]
    return xr.Variable(dims, values, attrs={"units": units, "long_name": long_name})


def cells(layout: Layout):
    """(index tuple, cell path) for every cell of the grid, in AXES order."""
    values = [list(enumerate(layout.grid[axis])) for axis in AXES]
    for combo in itertools.product(*values):
        index = tuple(i for i, _ in combo)
        yield index, cell_path({axis: v for axis, (_, v) in zip(AXES, combo)})


def grid_shape(layout: Layout) -> tuple[int, ...]:
    return tuple(len(layout.grid[axis]) for axis in AXES)


def table(variables: dict[str, xr.Variable], layout: Layout, attrs: dict) -> xr.Dataset:
    # Only the coordinates the variables use: the table of a per-seed metric does not depend
    # on curves.points, so it must not carry (or be checked against) a t coordinate.
    used = {dim for item in variables.values() for dim in item.dims}
    coords = {name: c for name, c in coordinates(layout).items() if set(c.dims) <= used}
    return xr.Dataset(variables, coords=coords, attrs={**attrs, "lltax_version": lltax.__version__})


def empty_variables(metric: str, layout: Layout) -> dict[str, xr.Variable]:
    shape = grid_shape(layout)
    if metric in PER_SEED_FILES:
        names = PER_SEED_FILES[metric][1]
        return {n: variable(n, (*AXES, "seed"), np.full(shape + (len(layout.seeds),), np.nan)) for n in names}
    if metric in PER_PAIR_FILES:
        names = PER_PAIR_FILES[metric][1]
        return {n: variable(n, (*AXES, "pair"), np.full(shape + (len(layout.pairs),), np.nan)) for n in names}
    if metric in PER_CELL_FILES:
        return {n: variable(n, AXES, np.full(shape, np.nan)) for n in PER_CELL_FILES[metric][1]}
    variables = {n: variable(n, (*AXES, "pair"), np.full(shape + (len(layout.pairs),), np.nan)) for n in CURVE_SCALARS}
    profile_shape = shape + (len(layout.pairs), len(layout.points))
    variables.update({n: variable(n, (*AXES, "pair", "t"), np.full(profile_shape, np.nan)) for n in CURVE_PROFILES})
    return variables


def empty_metric(metric: str, config: dict) -> xr.Dataset:
    """The all-NaN table of a metric (same schema as ``tables.aggregate_metric``'s)."""
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose one of {list(METRICS)}")
    layout = table_layout(config)
    return table(empty_variables(metric, layout), layout, {"metric": metric, "config": canonical_json(config)})

"""Per-job outputs -> one labelled xarray Dataset (DESIGN.md, "The dataset contract").

Aggregation runs per metric, then merges, so a change to one metric rebuilds only its table
and the merge. Every table covers the FULL grid of the config: a job that has not run (or a
file that is missing) is NaN, never 0, and the number of missing files is logged.

Dimensions: one per grid axis in ``lltax.config.AXES`` order (size-1 axes kept), ``seed``,
``pair`` (an integer index with coordinates ``seed_a(pair)``, ``seed_b(pair)``: all unordered
seed pairs a < b, sorted; a MultiIndex cannot be written to netCDF) and ``t`` (curve points).
Float coordinates use the canonical spelling of ``lltax.config.canonical_value``.
"""

from __future__ import annotations

import argparse
import copy
import functools
import itertools
import json
import logging
import math
import shutil
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import xarray as xr

import lltax
from lltax.config import (
    ConfigError,
    canonical_json,
    canonical_value,
    cell_path,
    load_config,
    load_schema,
    parse_cell_path,
    seed_pairs,
)
from lltax.contract import (
    AXES,
    BOOLEAN_VARIABLES,
    COORDINATE_ATTRS,
    CURVE_RECORD,
    INTEGER_AXES,
    METRICS,
    VALID_RANGES,
    VARIABLE_ATTRS,
)
from lltax.io import atomic_path, read_json

log = logging.getLogger(__name__)

# Per-seed metrics: the file under <cell>/seed=S/ and {dataset variable: key in that file}; a
# dotted key is nested. Loss and accuracy come from the training job's own final evaluation
# (eval mode, after the checkpoint was chosen): a separate evaluate job computed exactly the
# same numbers in a second process (`lltax evaluate` remains for checkpoints by hand).
PER_SEED_FILES = {
    "train": (
        "train.json",
        {
            "diverged": "diverged", "train_wall_time": "wall_time_s",
            "train_loss": "final.train_loss", "train_acc": "final.train_acc",
            "test_loss": "final.test_loss", "test_acc": "final.test_acc",
        },
    ),
    "hessian": (
        "hessian.json",
        {
            "hessian_top_eigenvalue": "top_eigenvalue",
            "hessian_trace": "trace",
            "hessian_eigenvalue_error": "eigenvalue_error",
            "hessian_trace_error": "trace_error",
        },
    ),
}
# Per-pair metrics written for a whole cell: the file under <cell>/ and {variable: key in each pair}.
PER_PAIR_FILES = {
    "cka": ("cka.json", {"cka": "cka"}),
    "distance": ("distance.json", {"l2_distance": "l2_distance"}),
}
# Curves: <cell>/pair=A-B/curve_eval.json, scalars per pair and profiles over t.
CURVE_FILE = CURVE_RECORD
CURVE_SCALARS = {"mode_connectivity": "mode_connectivity", "mode_connectivity_loss": "mode_connectivity_loss"}
CURVE_PROFILES = {
    "curve_train_error": "train_error",
    "curve_train_loss": "train_loss",
    "curve_test_error": "test_error",
    "curve_test_loss": "test_loss",
}

class Layout(NamedTuple):
    """The shape of every table: grid values per axis, seeds, seed pairs, curve points."""

    grid: dict[str, list]
    seeds: list[int]
    pairs: list[tuple[int, int]]
    points: list[float]
    curve_pairs: list[tuple[int, int]]


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
        raise ConfigError("config has no 'grid' section; pass the resolved config (lltax.config.validate_config)")
    missing = [axis for axis in AXES if axis not in grid]
    if missing:
        raise ConfigError(f"config 'grid' lacks axes {missing}; pass the resolved config, which lists every axis")
    if "seeds" not in config:
        raise ConfigError("config has no 'seeds'; pass the resolved config (a list of seeds)")
    seeds = config["seeds"]
    seeds = list(range(seeds)) if isinstance(seeds, int) else [int(s) for s in seeds]
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
    )


def coordinates(layout: Layout) -> dict[str, Any]:
    """Coordinates of the full grid, with units and long_name attributes."""
    coords: dict[str, Any] = {
        axis: (axis, np.asarray(values, dtype=np.int64 if axis in INTEGER_AXES else np.float64))
        for axis, values in layout.grid.items()
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


def _variable(name: str, dims: tuple[str, ...], values: np.ndarray) -> xr.Variable:
    units, long_name = VARIABLE_ATTRS[name]
    return xr.Variable(dims, values, attrs={"units": units, "long_name": long_name})


# ---------------------------------------------------------------------------------------------
# Reading per-job files


def _read_record(path: Path) -> dict | None:
    """A job's JSON record, or None when the file does not exist (the job has not run)."""
    try:
        record = read_json(path)
    except FileNotFoundError:
        return None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path} is not valid JSON ({e}); delete it and rerun the job that writes it") from e
    if not isinstance(record, dict):
        raise ValueError(f"{path} holds a JSON {type(record).__name__}, expected an object; rerun the job that writes it")
    return record


def _number(record: dict, key: str, path: Path, variable: str | None = None) -> float:
    """A finite float (or NaN for JSON null, how write_json spells NaN) from a record.

    Refused, naming the file: a missing key, a non-number, a boolean where a number belongs (or
    a number where a flag belongs), a literal NaN/Infinity or overflow (``1e400``: lltax writes
    null for those), and a value outside ``VALID_RANGES`` of ``variable``.
    """
    *parents, leaf = key.split(".")
    for parent in parents:
        if not isinstance(record.get(parent), dict):
            raise ValueError(f"{path} has no section {parent!r} (keys: {sorted(record)}); rerun the job with this lltax version")
        record = record[parent]
    if leaf not in record:
        raise ValueError(f"{path} has no key {key!r} (keys: {sorted(record)}); rerun the job with this lltax version")
    value = record[leaf]
    if value is None:
        return math.nan
    if variable in BOOLEAN_VARIABLES:
        if not isinstance(value, bool):
            raise ValueError(f"{path}: key {key!r} is {value!r}, expected true or false")
        return float(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{path}: key {key!r} is {value!r}, expected a number or null")
    if not math.isfinite(value):
        raise ValueError(f"{path}: key {key!r} is {value!r}; a non-finite result is written as null, so this file was not written by lltax")
    low, high = VALID_RANGES.get(variable, (-math.inf, math.inf))
    if not low <= value <= high:
        raise ValueError(f"{path}: {variable} = {value!r} is outside [{low:g}, {high:g}], impossible for this metric")
    return float(value)


def _check_origin(record: dict, path: Path, cell: str, seed: int | None = None, pair: tuple[int, int] | None = None) -> None:
    """Refuse a per-job record whose recorded cell, seed or pair is not the one its path names.

    A file copied from another cell or seed (or written by an lltax without provenance) would
    otherwise merge silently under the wrong coordinates.
    """
    if "cell" not in record or not isinstance(record["cell"], dict):
        raise ValueError(f"{path} records no cell it was computed for (written by an older lltax?); rerun the job that writes it")
    expected = {k: v for k, v in parse_cell_path(cell).items() if k in AXES}
    try:
        recorded = {k: canonical_value(v) for k, v in record["cell"].items()}
    except (ConfigError, TypeError, ValueError) as e:
        raise ValueError(f"{path}: recorded cell {record['cell']!r} is not a grid cell") from e
    if recorded != expected:
        raise ValueError(f"{path} was computed for cell {recorded}, not for the cell of its path {expected}; delete it and rerun its job")
    if seed is not None and record.get("seed") != seed:
        raise ValueError(f"{path} was computed for seed {record.get('seed')!r}, not for seed {seed} of its path; delete it and rerun its job")
    if pair is not None and (record.get("seed_a"), record.get("seed_b")) != pair:
        raise ValueError(f"{path} is the curve of seeds {record.get('seed_a')!r}-{record.get('seed_b')!r}, not of pair {pair[0]}-{pair[1]} of its path")


def _cells(layout: Layout):
    """(index tuple, cell path) for every cell of the grid, in AXES order."""
    values = [list(enumerate(layout.grid[axis])) for axis in AXES]
    for combo in itertools.product(*values):
        index = tuple(i for i, _ in combo)
        yield index, cell_path({axis: v for axis, (_, v) in zip(AXES, combo)})


def _report_missing(metric: str, missing: list[Path], expected: int) -> None:
    if missing:
        shown = ", ".join(str(p) for p in missing[:3]) + (" ..." if len(missing) > 3 else "")
        log.warning("%s: %d of %d files missing (NaN): %s", metric, len(missing), expected, shown)
    else:
        log.info("%s: all %d files read", metric, expected)


def _grid_shape(layout: Layout) -> tuple[int, ...]:
    return tuple(len(layout.grid[axis]) for axis in AXES)


def _aggregate_per_seed(metric: str, results_dir: Path, layout: Layout) -> dict[str, xr.Variable]:
    file_name, keys = PER_SEED_FILES[metric]
    arrays = {name: np.full(_grid_shape(layout) + (len(layout.seeds),), np.nan) for name in keys}
    missing: list[Path] = []
    for index, cell in _cells(layout):
        for s, seed in enumerate(layout.seeds):
            path = results_dir / cell / f"seed={seed}" / file_name
            record = _read_record(path)
            if record is None:
                missing.append(path)
                continue
            _check_origin(record, path, cell, seed=seed)
            for name, key in keys.items():
                arrays[name][index + (s,)] = _number(record, key, path, name)
    _report_missing(metric, missing, math.prod(_grid_shape(layout)) * len(layout.seeds))
    return {name: _variable(name, (*AXES, "seed"), values) for name, values in arrays.items()}


def _pair_records(record: dict, path: Path) -> list[dict]:
    pairs = record.get("pairs")
    if not isinstance(pairs, list):
        raise ValueError(f"{path} has no list 'pairs' (keys: {sorted(record)}); rerun the job that writes it")
    return pairs


def _aggregate_per_pair(metric: str, results_dir: Path, layout: Layout) -> dict[str, xr.Variable]:
    file_name, keys = PER_PAIR_FILES[metric]
    pair_index = {pair: i for i, pair in enumerate(layout.pairs)}
    arrays = {name: np.full(_grid_shape(layout) + (len(layout.pairs),), np.nan) for name in keys}
    missing: list[Path] = []
    cells = 0
    for index, cell in _cells(layout):
        cells += 1
        path = results_dir / cell / file_name
        record = _read_record(path)
        if record is None:
            missing.append(path)
            continue
        _check_origin(record, path, cell)
        for entry in _pair_records(record, path):
            seeds = (int(_number(entry, "seed_a", path)), int(_number(entry, "seed_b", path)))
            position = pair_index.get((min(seeds), max(seeds)))
            if position is None:  # a seed the config no longer lists
                log.warning("%s: pair %s is not among the config's seeds (a seed was removed from the config?); ignored", path, seeds)
                continue
            for name, key in keys.items():
                arrays[name][index + (position,)] = _number(entry, key, path, name)
    _report_missing(metric, missing, cells)
    return {name: _variable(name, (*AXES, "pair"), values) for name, values in arrays.items()}


def _aggregate_curves(results_dir: Path, layout: Layout) -> dict[str, xr.Variable]:
    pair_index = {pair: i for i, pair in enumerate(layout.pairs)}
    point_index = {t: i for i, t in enumerate(layout.points)}
    shape = _grid_shape(layout) + (len(layout.pairs),)
    scalars = {name: np.full(shape, np.nan) for name in CURVE_SCALARS}
    profiles = {name: np.full(shape + (len(layout.points),), np.nan) for name in CURVE_PROFILES}
    missing: list[Path] = []
    unknown_points: set[float] = set()
    for index, cell in _cells(layout):
        for a, b in layout.curve_pairs:
            path = results_dir / cell / f"pair={a}-{b}" / CURVE_FILE
            record = _read_record(path)
            if record is None:
                missing.append(path)
                continue
            _check_origin(record, path, cell, pair=(a, b))
            position = index + (pair_index[(min(a, b), max(a, b))],)
            for name, key in CURVE_SCALARS.items():
                scalars[name][position] = _number(record, key, path, name)
            if not isinstance(record.get("t"), list):
                raise ValueError(f"{path} has no list 't'; rerun the curve evaluation")
            columns = [point_index.get(canonical_value(float(t))) for t in record["t"]]
            unknown_points.update(t for t, c in zip(record["t"], columns) if c is None)
            for name, key in CURVE_PROFILES.items():
                values = record.get(key)
                if not isinstance(values, list) or len(values) != len(columns):
                    raise ValueError(f"{path}: {key!r} must be a list as long as 't' ({len(columns)} points)")
                for column, value in zip(columns, values):
                    if column is not None:
                        profiles[name][position + (column,)] = _number({key: value}, key, path, name)
    if unknown_points:
        log.warning("curves: points %s are not in the config's curves.points %s; ignored", sorted(unknown_points), layout.points)
    _report_missing("curves", missing, math.prod(_grid_shape(layout)) * len(layout.curve_pairs))
    variables = {name: _variable(name, (*AXES, "pair"), values) for name, values in scalars.items()}
    variables.update({name: _variable(name, (*AXES, "pair", "t"), values) for name, values in profiles.items()})
    return variables


def _table(variables: dict[str, xr.Variable], layout: Layout, attrs: dict) -> xr.Dataset:
    # Only the coordinates the variables use: the table of a per-seed metric does not depend
    # on curves.points, so it must not carry (or be checked against) a t coordinate.
    used = {dim for variable in variables.values() for dim in variable.dims}
    coords = {name: c for name, c in coordinates(layout).items() if set(c.dims) <= used}
    return xr.Dataset(variables, coords=coords, attrs={**attrs, "lltax_version": lltax.__version__})


def empty_metric(metric: str, config: dict) -> xr.Dataset:
    """The all-NaN table of a metric (same schema as aggregate_metric's)."""
    return aggregate_metric(metric, None, config)


def aggregate_metric(metric: str, results_dir: str | Path | None, config: dict) -> xr.Dataset:
    """One metric's table over the full grid of ``config``, read from the per-job files.

    Parameters
    ----------
    metric
        One of METRICS: train, hessian (per seed), cka, distance (per pair), curves.
    results_dir
        ``results/<experiment>``, holding the hive folders of the cells; None gives the
        all-NaN table without reading anything.
    config
        The resolved config, or the part of it that shapes the table (grid, seeds, curves).

    Returns
    -------
    xr.Dataset with the metric's variables, NaN where a file is missing, and attrs ``metric``,
    ``config`` (canonical JSON of ``config``) and ``lltax_version``.
    """
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose one of {list(METRICS)}")
    layout = table_layout(config)
    attrs = {"metric": metric, "config": canonical_json(config)}
    if results_dir is None:
        return _table(_empty_variables(metric, layout), layout, attrs)
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise FileNotFoundError(f"results folder {results_dir} does not exist; pass results/<experiment> of a run")
    if metric in PER_SEED_FILES:
        variables = _aggregate_per_seed(metric, results_dir, layout)
    elif metric in PER_PAIR_FILES:
        variables = _aggregate_per_pair(metric, results_dir, layout)
    else:
        variables = _aggregate_curves(results_dir, layout)
    return _table(variables, layout, attrs)


def _empty_variables(metric: str, layout: Layout) -> dict[str, xr.Variable]:
    shape = _grid_shape(layout)
    if metric in PER_SEED_FILES:
        names = PER_SEED_FILES[metric][1]
        return {n: _variable(n, (*AXES, "seed"), np.full(shape + (len(layout.seeds),), np.nan)) for n in names}
    if metric in PER_PAIR_FILES:
        names = PER_PAIR_FILES[metric][1]
        return {n: _variable(n, (*AXES, "pair"), np.full(shape + (len(layout.pairs),), np.nan)) for n in names}
    variables = {n: _variable(n, (*AXES, "pair"), np.full(shape + (len(layout.pairs),), np.nan)) for n in CURVE_SCALARS}
    profile_shape = shape + (len(layout.pairs), len(layout.points))
    variables.update({n: _variable(n, (*AXES, "pair", "t"), np.full(profile_shape, np.nan)) for n in CURVE_PROFILES})
    return variables


# ---------------------------------------------------------------------------------------------
# Merge, write, read


def merge_metrics(datasets: list[xr.Dataset], config: dict) -> xr.Dataset:
    """Merge per-metric tables into the contract dataset; a metric not given is all NaN.

    Every table must have the full-grid coordinates of ``config`` (a table built for another
    grid or seeds is stale and is refused, naming its metric). ``config`` is stored as
    canonical JSON in ``attrs["config"]``.
    """
    layout = table_layout(config)
    expected = xr.Dataset(coords=coordinates(layout))
    tables: dict[str, xr.Dataset] = {}
    for table in datasets:
        metric = table.attrs.get("metric")
        if metric not in METRICS:
            raise ValueError(f"a table has attrs metric={metric!r}; expected one of {list(METRICS)} (made by lltax aggregate-metric)")
        if metric in tables:
            raise ValueError(f"metric {metric!r} is given twice; pass one table per metric")
        for name, coord in expected.coords.items():
            used = any(set(coord.dims) <= set(variable.dims) for variable in table.data_vars.values())
            if used and (name not in table.coords or not np.array_equal(table[name].values, coord.values)):
                raise ValueError(
                    f"the {metric!r} table's coordinate {name!r} does not match the config's full grid; "
                    f"it is stale: rebuild it with `lltax aggregate-metric {metric}`"
                )
        tables[metric] = table
    absent = [m for m in METRICS if m not in tables]
    if absent:
        log.warning("no tables for %s: their variables are all NaN", absent)
    ordered = [tables.get(m) if m in tables else empty_metric(m, config) for m in METRICS]
    merged = xr.merge(ordered, join="exact", compat="no_conflicts", combine_attrs="override")
    merged.attrs = {"title": "lltax loss-landscape dataset", "config": canonical_json(config), "lltax_version": lltax.__version__}
    return merged


def write_dataset(dataset: xr.Dataset, path: str | Path) -> None:
    """Write netCDF4 atomically; text variables (e.g. phase) as fixed-width char arrays."""
    encoding = {name: {"dtype": "S1"} for name, var in dataset.data_vars.items() if var.dtype.kind in "UO"}
    try:
        with atomic_path(path) as tmp:
            dataset.to_netcdf(tmp, engine="netcdf4", format="NETCDF4", encoding=encoding)
    except (OSError, RuntimeError) as e:
        # netCDF reports a full disk as "NetCDF: HDF error": say what may have happened.
        free = shutil.disk_usage(Path(path).parent).free if Path(path).parent.exists() else -1
        raise OSError(
            f"writing {path} failed ({e}); {free / 1e6:.0f} MB free on its disk — if it is full, free space and rerun. "
            f"The previous {Path(path).name}, if any, is unchanged"
        ) from e


def read_dataset(path: str | Path) -> xr.Dataset:
    """Load a netCDF dataset fully into memory (the file is closed afterwards)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"dataset {path} does not exist; build it with `lltax aggregate` / `lltax merge`")
    try:
        return xr.load_dataset(path, engine="netcdf4")
    except OSError as e:
        raise ValueError(f"{path} is not a readable netCDF file ({e}); rebuild it") from e


def dataset_config(dataset: xr.Dataset) -> dict:
    """The config stored in a dataset's attributes."""
    return json.loads(dataset.attrs["config"])


# ---------------------------------------------------------------------------------------------
# Grid inferred from a results folder (for `lltax aggregate` without --config)


def infer_config(results_dir: str | Path) -> dict:
    """Grid, seeds, curve pairs and points from the hive paths present under ``results_dir``."""
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise FileNotFoundError(f"results folder {results_dir} does not exist; pass results/<experiment> of a run")
    names = [PER_SEED_FILES[m][0] for m in PER_SEED_FILES] + [PER_PAIR_FILES[m][0] for m in PER_PAIR_FILES] + [CURVE_FILE]
    values: dict[str, set] = {axis: set() for axis in AXES}
    seeds: set[int] = set()
    curve_pairs: set[tuple[int, int]] = set()
    points: set[float] = set()
    for name in names:
        for path in results_dir.rglob(name):
            try:
                coords = parse_cell_path(str(path.relative_to(results_dir)))
            except ValueError:
                continue  # not a cell's file
            for axis in AXES:
                values[axis].add(coords[axis])
            if "seed" in coords:
                seeds.add(coords["seed"])
            if "pair" in coords:
                seeds.update(coords["pair"])
                curve_pairs.add(coords["pair"])
                record = _read_record(path) or {}
                points.update(canonical_value(float(t)) for t in record.get("t", []))
    if not values["width"]:
        raise FileNotFoundError(f"no per-job result files ({', '.join(names)}) under {results_dir}")
    seed_list = sorted(seeds)
    mode = next((m for m in ("first", "consecutive", "all") if curve_pairs <= set(seed_pairs(seed_list, m))), "all")
    config = {"grid": {axis: sorted(values[axis]) for axis in AXES}, "seeds": seed_list,
              "curves": {"enabled": bool(curve_pairs), "pairs": mode}}
    if points:
        config["curves"]["points"] = sorted(points)
    return config


def aggregate_all(results_dir: str | Path, config: dict) -> xr.Dataset:
    """Every metric's table, merged: the whole aggregation by hand."""
    return merge_metrics([aggregate_metric(metric, results_dir, config) for metric in METRICS], config)


# ---------------------------------------------------------------------------------------------
# CLI


def _parse_config_json(text: str) -> dict:
    try:
        config = json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(f"--config-json is not valid JSON ({e}): {text[:200]!r}") from e
    if not isinstance(config, dict):
        raise ConfigError("--config-json must be a JSON object holding at least 'grid' and 'seeds'")
    return config


def _run_aggregate_metric(args: argparse.Namespace) -> int:
    table = aggregate_metric(args.metric, args.results_dir, _parse_config_json(args.config_json))
    write_dataset(table, args.out)
    log.info("wrote %s", args.out)
    return 0


def _run_merge(args: argparse.Namespace) -> int:
    merged = merge_metrics([read_dataset(path) for path in args.inputs], _parse_config_json(args.config_json))
    write_dataset(merged, args.out)
    log.info("wrote %s", args.out)
    return 0


def _run_aggregate(args: argparse.Namespace) -> int:
    config = load_config(args.config) if args.config else infer_config(args.results_dir)
    if not args.config:
        log.info("grid inferred from %s: %s", args.results_dir, canonical_json(config))
    write_dataset(aggregate_all(args.results_dir, config), args.out)
    log.info("wrote %s", args.out)
    return 0


def add_cli(subparsers) -> None:
    p = subparsers.add_parser("aggregate-metric", help="one metric's per-job JSON files -> a netCDF table over the full grid")
    p.add_argument("metric", choices=METRICS, help="which metric's files to read")
    p.add_argument("--results-dir", required=True, help="results/<experiment>")
    p.add_argument("--config-json", required=True, help="canonical JSON with grid, seeds (and curves for curves)")
    p.add_argument("--out", required=True, help="output table, e.g. results/<experiment>/aggregate/<metric>.nc")
    p.set_defaults(func=_run_aggregate_metric)

    p = subparsers.add_parser("merge", help="merge per-metric tables into dataset.nc")
    p.add_argument("--inputs", nargs="+", required=True, help="tables written by aggregate-metric")
    p.add_argument("--config-json", required=True, help="the resolved config (stored in the dataset's attributes)")
    p.add_argument("--out", required=True, help="output dataset.nc")
    p.set_defaults(func=_run_merge)

    p = subparsers.add_parser("aggregate", help="all metrics + merge of a results folder, by hand")
    p.add_argument("results_dir", help="results/<experiment>")
    p.add_argument("--config", default=None, help="config.yaml of the run (default: infer grid and seeds from the paths)")
    p.add_argument("--out", required=True, help="output dataset.nc")
    p.set_defaults(func=_run_aggregate)

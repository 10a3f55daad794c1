"""Per-job records -> one metric's table over the full grid of the config.

Aggregation runs per metric, then merges (``lltax.results.netcdf``), so a change to one metric
rebuilds only its table and the merge. Every table covers the FULL grid: a job that has not run
(or a file that is missing) is NaN, never 0, and the number of missing files is logged. Every
record read is checked first (``lltax.results.records``): origin, checkpoints, pairs, points
and values.
"""

from __future__ import annotations

import itertools
import logging
import math
from pathlib import Path

import numpy as np
import xarray as xr

from lltax.config.grid import canonical_json, canonical_value
from lltax.contract import AXES, CURVE_RECORD, METRICS
from lltax.results.layout import (
    CURVE_PROFILES,
    CURVE_SCALARS,
    OPTIONAL_KEYS,
    PER_CELL_FILES,
    PER_PAIR_FILES,
    PER_SEED_FILES,
    Layout,
    cells,
    empty_variables,
    grid_shape,
    table,
    table_layout,
    variable,
)
from lltax.results.records import Checkpoints, check_origin, check_record_settings, expected_settings, number, read_record

log = logging.getLogger(__name__)


def _report_missing(metric: str, missing: list[Path], expected: int) -> None:
    if missing:
        shown = ", ".join(str(p) for p in missing[:3]) + (" ..." if len(missing) > 3 else "")
        log.warning("%s: %d of %d files missing (NaN): %s", metric, len(missing), expected, shown)
    else:
        log.info("%s: all %d files read", metric, expected)


def _has_key(record: dict, key: str) -> bool:
    *parents, leaf = key.split(".")
    for parent in parents:
        record = record.get(parent) if isinstance(record, dict) else None
    return isinstance(record, dict) and leaf in record


def _aggregate_per_seed(metric: str, results_dir: Path, layout: Layout, settings: dict | None = None) -> dict[str, xr.Variable]:
    file_name, keys = PER_SEED_FILES[metric]
    arrays = {name: np.full(grid_shape(layout) + (len(layout.seeds),), np.nan) for name in keys}
    missing: list[Path] = []
    checkpoints = Checkpoints(results_dir, layout.checkpoint, settings)
    for index, cell in cells(layout):
        for s, seed in enumerate(layout.seeds):
            path = results_dir / cell / f"seed={seed}" / file_name
            record = read_record(path)
            if record is None:
                missing.append(path)
                continue
            check_origin(record, path, cell, seed=seed)
            check_record_settings(record, path, metric, settings)
            if metric == "train":
                checkpoints.check_config_hash(record.get("config_hash"), path, cell, seed)
            else:
                checkpoints.check_sha(record.get("checkpoint_sha256"), path, cell, seed, "checkpoint_sha256")
            for name, key in keys.items():
                if key in OPTIONAL_KEYS and not _has_key(record, key):
                    continue  # not computed for this task: NaN
                arrays[name][index + (s,)] = number(record, key, path, name)
    _report_missing(metric, missing, math.prod(grid_shape(layout)) * len(layout.seeds))
    checkpoints.report(metric)
    return {name: variable(name, (*AXES, "seed"), values) for name, values in arrays.items()}


def _pair_entries(record: dict, path: Path, layout: Layout) -> tuple[set[int], dict[tuple[int, int], dict]]:
    """(seeds the record was computed from, {(seed_a, seed_b): entry}) of a per-cell record.

    Its pairs must be every pair of those seeds, once each, and the seeds the config's: a
    record of fewer seeds (a seed added since) fills its pairs, the new seed's stay NaN.
    """
    shas = record.get("checkpoints_sha256")
    if not isinstance(shas, dict) or not all(isinstance(key, str) and key.isdigit() for key in shas):
        raise ValueError(f"{path} records no checkpoints_sha256 by seed (what it was computed from); delete it and rerun its job")
    computed = {int(key) for key in shas}
    foreign = sorted(computed - set(layout.seeds))
    if foreign:
        raise ValueError(
            f"{path} was computed with seeds {foreign}, which the config's seeds {layout.seeds} do not hold; delete it and rerun its job"
        )
    entries = record.get("pairs")
    if not isinstance(entries, list) or not all(isinstance(entry, dict) for entry in entries):
        raise ValueError(f"{path} has no list 'pairs' of objects (keys: {sorted(record)}); delete it and rerun the job that writes it")
    found: dict[tuple[int, int], dict] = {}
    for entry in entries:
        a, b = (number(entry, key, path) for key in ("seed_a", "seed_b"))
        if not (a.is_integer() and b.is_integer()):
            raise ValueError(f"{path}: pair {a!r}-{b!r} does not name two seeds")
        pair = (min(int(a), int(b)), max(int(a), int(b)))
        if pair in found:
            raise ValueError(f"{path} lists pair {pair[0]}-{pair[1]} twice; delete it and rerun the job that writes it")
        found[pair] = entry
    expected = list(itertools.combinations(sorted(computed), 2))
    if sorted(found) != expected:
        raise ValueError(
            f"{path} holds pairs {sorted(found)}, but the seeds it was computed from ({sorted(computed)}) make pairs {expected}: "
            "lltax did not write it so; delete it and rerun the job that writes it"
        )
    return computed, found


def _aggregate_per_pair(metric: str, results_dir: Path, layout: Layout, settings: dict | None = None) -> dict[str, xr.Variable]:
    file_name, keys = PER_PAIR_FILES[metric]
    pair_index = {pair: i for i, pair in enumerate(layout.pairs)}
    arrays = {name: np.full(grid_shape(layout) + (len(layout.pairs),), np.nan) for name in keys}
    missing: list[Path] = []
    checkpoints = Checkpoints(results_dir, layout.checkpoint, settings)
    expected = 0
    for index, cell in cells(layout):
        expected += 1
        path = results_dir / cell / file_name
        record = read_record(path)
        if record is None:
            missing.append(path)
            continue
        check_origin(record, path, cell)
        check_record_settings(record, path, metric, settings)
        computed, entries = _pair_entries(record, path, layout)
        checkpoints.check_pair_shas(record, path, cell, computed)
        not_yet = len(layout.pairs) - len(entries)
        if not_yet:
            log.info("%s: %d pair(s) of seeds it was not computed with stay NaN", path, not_yet)
        for pair, entry in entries.items():
            for name, key in keys.items():
                arrays[name][index + (pair_index[pair],)] = number(entry, key, path, name)
    _report_missing(metric, missing, expected)
    checkpoints.report(metric)
    return {name: variable(name, (*AXES, "pair"), values) for name, values in arrays.items()}


def _curve_points(record: dict, path: Path, layout: Layout) -> list[int]:
    """The column of each of a curve record's points: exactly the config's curves.points."""
    points = record.get("t")
    if not isinstance(points, list) or not all(isinstance(t, (int, float)) and not isinstance(t, bool) for t in points):
        raise ValueError(f"{path} has no list of numbers 't'; delete it and rerun the curve evaluation")
    canonical = [canonical_value(float(t)) for t in points]
    if sorted(canonical) != layout.points:
        raise ValueError(
            f"{path} was evaluated at t = {canonical}, not at the config's curves.points {layout.points}; "
            "delete it and rerun the curve evaluation"
        )
    point_index = {t: i for i, t in enumerate(layout.points)}
    return [point_index[t] for t in canonical]


def _aggregate_curves(results_dir: Path, layout: Layout, settings: dict | None = None) -> dict[str, xr.Variable]:
    pair_index = {pair: i for i, pair in enumerate(layout.pairs)}
    shape = grid_shape(layout) + (len(layout.pairs),)
    scalars = {name: np.full(shape, np.nan) for name in CURVE_SCALARS}
    profiles = {name: np.full(shape + (len(layout.points),), np.nan) for name in CURVE_PROFILES}
    missing: list[Path] = []
    checkpoints = Checkpoints(results_dir, layout.checkpoint, settings)
    for index, cell in cells(layout):
        for a, b in layout.curve_pairs:
            path = results_dir / cell / f"pair={a}-{b}" / CURVE_RECORD
            record = read_record(path)
            if record is None:
                missing.append(path)
                continue
            check_origin(record, path, cell, pair=(a, b))
            check_record_settings(record, path, "curves", settings)
            checkpoints.check_pair_shas(record, path, cell, {a, b})
            position = index + (pair_index[(min(a, b), max(a, b))],)
            for name, key in CURVE_SCALARS.items():
                scalars[name][position] = number(record, key, path, name)
            columns = _curve_points(record, path, layout)
            for name, key in CURVE_PROFILES.items():
                values = record.get(key)
                if not isinstance(values, list) or len(values) != len(columns):
                    raise ValueError(f"{path}: {key!r} must be a list as long as 't' ({len(columns)} points)")
                for column, value in zip(columns, values):
                    profiles[name][position + (column,)] = number({key: value}, key, path, name)
    _report_missing("curves", missing, math.prod(grid_shape(layout)) * len(layout.curve_pairs))
    checkpoints.report("curves")
    variables = {name: variable(name, (*AXES, "pair"), values) for name, values in scalars.items()}
    variables.update({name: variable(name, (*AXES, "pair", "t"), values) for name, values in profiles.items()})
    return variables


def _aggregate_per_cell(metric: str, results_dir: Path, layout: Layout, settings: dict | None = None) -> dict[str, xr.Variable]:
    """One value per cell from <cell>/<file>, checked against the cell's checkpoints."""
    file_name, keys = PER_CELL_FILES[metric]
    values = {name: np.full(grid_shape(layout), np.nan) for name in keys}
    missing: list[Path] = []
    checkpoints = Checkpoints(results_dir, layout.checkpoint, settings)
    for index, cell in cells(layout):
        path = results_dir / cell / file_name
        record = read_record(path)
        if record is None:
            missing.append(path)
            continue
        check_origin(record, path, cell)
        check_record_settings(record, path, metric, settings)
        checkpoints.check_pair_shas(record, path, cell, set(layout.seeds))
        for name, key in keys.items():
            values[name][index] = number(record, key, path, name)
    _report_missing(metric, missing, math.prod(grid_shape(layout)))
    checkpoints.report(metric)
    return {name: variable(name, AXES, array) for name, array in values.items()}


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
        return table(empty_variables(metric, layout), layout, attrs)
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise FileNotFoundError(f"results folder {results_dir} does not exist; pass results/<experiment> of a run")
    settings = expected_settings(metric, config)  # None: a grid inferred from paths, no settings to compare
    if settings is None:
        log.info("%s: no train section in the config: records' settings are not compared with it", metric)
    if metric in PER_SEED_FILES:
        variables = _aggregate_per_seed(metric, results_dir, layout, settings)
    elif metric in PER_PAIR_FILES:
        variables = _aggregate_per_pair(metric, results_dir, layout, settings)
    elif metric in PER_CELL_FILES:
        variables = _aggregate_per_cell(metric, results_dir, layout, settings)
    else:
        variables = _aggregate_curves(results_dir, layout, settings)
    return table(variables, layout, attrs)

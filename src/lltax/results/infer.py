"""The grid of a results folder, read from the hive paths of its per-job files (for
``lltax aggregate`` without a config), and the whole aggregation by hand."""

from __future__ import annotations

from pathlib import Path

import xarray as xr

from lltax.config.grid import canonical_value, parse_cell_path, seed_pairs
from lltax.contract import AXES, METRICS
from lltax.results.netcdf import merge_metrics
from lltax.results.records import read_record
from lltax.results.tables import CURVE_RECORD, PER_PAIR_FILES, PER_SEED_FILES, aggregate_metric


def infer_config(results_dir: str | Path) -> dict:
    """Grid, seeds, curve pairs and points from the hive paths present under ``results_dir``."""
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise FileNotFoundError(f"results folder {results_dir} does not exist; pass results/<experiment> of a run")
    names = [PER_SEED_FILES[m][0] for m in PER_SEED_FILES] + [PER_PAIR_FILES[m][0] for m in PER_PAIR_FILES] + [CURVE_RECORD]
    values: dict[str, set] = {axis: set() for axis in AXES}
    seeds: set[int] = set()
    curve_pairs: set[tuple[int, int]] = set()
    points: set[float] = set()
    deeper: set[Path] = set()
    for name in names:
        for path in results_dir.rglob(name):
            relative = path.relative_to(results_dir)
            try:
                coords = parse_cell_path(str(relative))
            except ValueError:
                continue  # not a cell's file
            if not relative.parts[0].startswith(f"{AXES[0]}="):  # a cell folder one level (or more) further down
                deeper.add(results_dir / relative.parts[0])
                continue
            for axis in AXES:
                values[axis].add(coords[axis])
            if "seed" in coords:
                seeds.add(coords["seed"])
            if "pair" in coords:
                seeds.update(coords["pair"])
                curve_pairs.add(coords["pair"])
                record = read_record(path) or {}
                points.update(canonical_value(float(t)) for t in record.get("t", []))
    if not values["width"]:
        if deeper:
            raise FileNotFoundError(
                f"{results_dir} holds no cell folders ({AXES[0]}=...) itself; the experiments under it are "
                f"{sorted(str(p) for p in deeper)[:5]}: pass one of them (results/<experiment>)"
            )
        raise FileNotFoundError(f"no per-job result files ({', '.join(names)}) under {results_dir}")
    seed_list = sorted(seeds)
    mode = next((m for m in ("first", "consecutive", "all") if curve_pairs <= set(seed_pairs(seed_list, m))), "all")
    config = {
        "grid": {axis: sorted(values[axis]) for axis in AXES},
        "seeds": seed_list,
        "curves": {"enabled": bool(curve_pairs), "pairs": mode},
    }
    if points:
        config["curves"]["points"] = sorted(points)
    return config


def aggregate_all(results_dir: str | Path, config: dict) -> xr.Dataset:
    """Every metric's table, merged: the whole aggregation by hand."""
    # Ensembles only where FGE ran (fge.enabled), as the workflow's tables.
    metrics = [m for m in METRICS if m != "ensembles" or (config.get("fge") or {}).get("enabled")]
    return merge_metrics([aggregate_metric(metric, results_dir, config) for metric in metrics], config)

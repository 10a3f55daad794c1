"""Per-metric tables -> dataset.nc (DESIGN.md, "The dataset contract"), and reading it back.

Merging checks that every table has the full-grid coordinates of the config (a table of
another grid or seeds is stale); netCDF is written atomically.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import xarray as xr

import lltax
from lltax.config.grid import canonical_json
from lltax.contract import METRICS, VALID_RANGES
from lltax.results.layout import coordinates, empty_metric, table_layout
from lltax.storage.atomic_files import atomic_path

log = logging.getLogger(__name__)


def merge_metrics(datasets: list[xr.Dataset], config: dict, sources: list | None = None) -> xr.Dataset:
    """Merge per-metric tables into the contract dataset; a metric not given is all NaN.

    Every table must have the full-grid coordinates of ``config`` (a table built for another
    grid or seeds is stale and is refused, naming its metric). ``config`` is stored as
    canonical JSON in ``attrs["config"]``. ``sources`` (the tables' files) name a bad table.
    """
    layout = table_layout(config)
    expected = xr.Dataset(coords=coordinates(layout))
    tables: dict[str, xr.Dataset] = {}
    for position, table in enumerate(datasets):
        metric = table.attrs.get("metric")
        where = f"table {sources[position]}" if sources else f"table {position + 1}"
        if metric not in METRICS:
            raise ValueError(
                f"{where} is not a metric table (attribute metric={metric!r}; expected one of {list(METRICS)}, as lltax aggregate-metric writes)"
            )
        if metric in tables:
            raise ValueError(f"metric {metric!r} is given twice ({where}); pass one table per metric")
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


def check_values(dataset: xr.Dataset, names: tuple[str, ...] = ()) -> None:
    """Every contract variable of ``dataset`` (and ``names``) numeric and, where finite, inside
    its ``VALID_RANGES`` (what aggregation enforces): a hand-edited or foreign dataset is
    refused, naming the variable, instead of being classified or ending in a traceback."""
    for name in sorted((set(VALID_RANGES) | set(names)) & set(dataset.data_vars)):
        values = dataset[name].values
        if not (np.issubdtype(values.dtype, np.number) or np.issubdtype(values.dtype, np.bool_)):
            raise ValueError(f"dataset variable {name!r} holds {values.dtype} values, not numbers; rebuild the dataset with `lltax merge`")
        if name not in VALID_RANGES:
            continue
        low, high = VALID_RANGES[name]
        finite = values[np.isfinite(values)]
        if finite.size and (finite.min() < low or finite.max() > high):
            raise ValueError(
                f"dataset variable {name!r} has values in [{finite.min():.6g}, {finite.max():.6g}], outside its valid range "
                f"[{low:.6g}, {high:.6g}]; the dataset was edited or is not lltax's: rebuild it with `lltax merge`"
            )

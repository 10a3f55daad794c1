"""``lltax plot``: the phase diagrams of an experiment (panels, phases, lines, curves)."""

from __future__ import annotations

import argparse
from pathlib import Path

import xarray as xr

from lltax.config.schema import parse_settings
from lltax.figures.diagrams import plot_all

HELP = "draw the phase diagrams: panels, phases, lines and curves figures"
ARGUMENTS = {
    "dataset": {"type": Path, "help": "merged per-seed results (dataset.nc)"},
    "phases": {"type": Path, "help": "classified cells (phases.nc)"},
    "settings": {"help": "the config section 'plots' as JSON"},
    "out_dir": {"nargs": None, "type": Path, "help": "folder for panels/phases/lines/curves.<format>"},
}


def _open(path: Path, what: str, step: str) -> xr.Dataset:
    try:
        with xr.open_dataset(path) as data:
            return data.load()
    except FileNotFoundError as e:
        raise FileNotFoundError(f"{what} {path} does not exist; run the {step} step first") from e
    except (ValueError, OSError) as e:  # not netCDF: xarray lists its engines over many lines
        raise ValueError(
            f"{what} {path} is not a netCDF file lltax can read ({type(e).__name__}); pass the file the {step} step writes"
        ) from None


def check_classified_from(phases: xr.Dataset, dataset: xr.Dataset, phases_path: Path, dataset_path: Path) -> None:
    """``phases`` must be ``lltax classify`` of ``dataset``: the same config and, for every
    variable of the dataset, the same values (classify copies them), else figures would mix two
    runs of one grid."""
    if phases.attrs.get("config") != dataset.attrs.get("config"):
        raise ValueError(
            f"{phases_path} was classified from a dataset of another config than {dataset_path}; classify {dataset_path} again"
        )
    for name, variable in dataset.data_vars.items():
        if name not in phases or not variable.equals(phases[name]):
            raise ValueError(
                f"{phases_path} was not classified from {dataset_path} (variable {name!r} differs); classify {dataset_path} again"
            )


def run(args: argparse.Namespace) -> int:
    settings = parse_settings(args.settings, "plots")
    dataset = _open(args.dataset, "dataset", "aggregate")
    phases = _open(args.phases, "phases file", "classify")
    check_classified_from(phases, dataset, args.phases, args.dataset)
    plot_all(dataset, phases, args.out_dir, **settings)
    return 0

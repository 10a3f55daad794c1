"""``lltax plot``: the phase diagrams of an experiment (panels, phases, lines, curves)."""

from __future__ import annotations

import argparse
from pathlib import Path

import xarray as xr

from lltax.config import parse_settings
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


def run(args: argparse.Namespace) -> int:
    settings = parse_settings(args.settings, "plots")
    dataset = _open(args.dataset, "dataset", "aggregate")
    phases = _open(args.phases, "phases file", "classify")
    plot_all(dataset, phases, args.out_dir, **settings)
    return 0

"""``lltax landscape-figure``: the figure of one landscape.nc or comparison.nc, a job of its own.

Drawing apart from the computation (as ``lltax plot`` is for the phase figures): a colour
setting (``landscape.levels``, ``landscape.color_limits``) or an edit of the figure code redraws
the picture without recomputing the landscape, and a deleted picture is drawn again.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import xarray as xr

from lltax.config.schema import parse_settings
from lltax.figures.landscape import landscape_figure
from lltax.figures.save import FORMATS, save_figure

HELP = "draw the figure of a landscape.nc or comparison.nc (lltax landscape): landscape.png / comparison.png"
ARGUMENTS = {
    "landscapes": {"nargs": None, "help": "the file lltax landscape wrote (<cell>/landscape.nc or <cell>/vs_<B>/comparison.nc)"},
    "settings": {"help": "the config section 'landscape' as JSON (uses levels and color_limits)"},
    "out": {"nargs": None, "help": "figure to write, e.g. <cell>/landscape.png (.png, .pdf or .svg)"},
}


def run(args: argparse.Namespace) -> int:
    settings = parse_settings(args.settings, "landscape")
    figure_format = Path(args.out).suffix.lstrip(".")
    if figure_format not in FORMATS:
        raise ValueError(f"--out {args.out}: the format {figure_format!r} is not supported; name a .png, .pdf or .svg file")
    try:
        with xr.open_dataset(args.landscapes, engine="netcdf4") as opened:
            dataset = opened.load()
    except FileNotFoundError as e:
        raise FileNotFoundError(f"landscape file {args.landscapes} does not exist; run lltax landscape first") from e
    except (ValueError, OSError) as e:  # not netCDF: xarray lists its engines over many lines
        raise ValueError(
            f"{args.landscapes} is not a netCDF file lltax can read ({type(e).__name__}); pass what lltax landscape wrote"
        ) from None
    if "surface_train_loss" not in dataset:
        raise ValueError(
            f"{args.landscapes} holds no landscape (no surface_train_loss); pass the landscape.nc or comparison.nc of lltax landscape"
        )
    save_figure(landscape_figure(dataset, settings), args.out, format=figure_format, dpi=150)
    return 0

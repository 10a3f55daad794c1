"""Figures of an experiment: phase-diagram panels, the phase map, a 1D metric view, curve profiles.

``plot_all`` reads the merged ``dataset.nc`` and the classified ``phases.nc`` and writes four
files with fixed names (``FIGURES``), so a Snakemake rule can declare them:

- ``panels.<format>``: one panel per metric over two grid axes, plus the phase map (Yang et al.
  2021, Figure 2); one row per value of every other grid axis that varies;
- ``phases.<format>``: the phase map alone, with phase, confidence and the thresholds;
- ``lines.<format>``: plots.line_metric against plots.y, one line per plots.line_group value
  (the paper's Figure 7e);
- ``curves.<format>``: training loss and error along the mode-connecting curves (Garipov et al.
  2018).

The figure functions live in ``plots_maps`` (2D) and ``plots_lines`` (1D); shared pieces in
``plots_grid``.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import matplotlib
import xarray as xr
from matplotlib.figure import Figure

from lltax.io import atomic_path
from lltax.plots_grid import check_axes
from lltax.plots_lines import curves_figure, lines_figure, metric_mean_and_spread, resolve_line_group
from lltax.plots_maps import panels_figure, phases_figure

__all__ = ["FIGURES", "FORMATS", "curves_figure", "lines_figure", "panels_figure", "phases_figure", "plot_all", "save_figure"]

logger = logging.getLogger(__name__)

FIGURES = ("panels", "phases", "lines", "curves")
FORMATS = ("png", "pdf", "svg")
# No creation dates and a fixed SVG id salt: the same data gives byte-identical files, so a
# rerun of the plot rule does not look like a change to anything downstream.
_METADATA = {"png": {}, "pdf": {"CreationDate": None}, "svg": {"Date": None}}


def save_figure(figure: Figure, path: str | Path, *, format: str, dpi: int) -> Path:
    """Write ``figure`` atomically to ``path`` (temporary file beside it, then rename)."""
    if format not in FORMATS:
        raise ValueError(f"plots.format = {format!r} is not supported; choose one of {list(FORMATS)}")
    path = Path(path)
    with matplotlib.rc_context({"svg.hashsalt": "lltax"}), atomic_path(path) as tmp:
        # The temporary name has no extension: say the format explicitly.
        figure.savefig(tmp, format=format, dpi=dpi, metadata=_METADATA[format])
    return path


def plot_all(
    dataset: xr.Dataset,
    phases: xr.Dataset,
    out_dir: str | Path,
    *,
    x: str = "width",
    y: str = "batch_size",
    format: str = "png",
    dpi: int = 150,
    line_metric: str = "hessian_trace",
    line_group: str = "auto",
) -> list[Path]:
    """Draw every figure and write ``<out_dir>/<name>.<format>`` for each name in FIGURES.

    All arguments are checked before anything is written, so a bad setting leaves no files.
    """
    check_axes(dataset, phases, x, y)
    if format not in FORMATS:
        raise ValueError(f"plots.format = {format!r} is not supported; choose one of {list(FORMATS)}")
    resolve_line_group(phases, x, y, line_group)
    metric_mean_and_spread(dataset, phases, line_metric)
    figures = {
        "panels": panels_figure(dataset, phases, x=x, y=y),
        "phases": phases_figure(phases, x=x, y=y),
        "lines": lines_figure(dataset, phases, x=x, y=y, line_metric=line_metric, line_group=line_group),
        "curves": curves_figure(dataset, phases, x=x, y=y),
    }
    paths = []
    for name in FIGURES:
        paths.append(save_figure(figures[name], Path(out_dir) / f"{name}.{format}", format=format, dpi=dpi))
        logger.info("wrote %s", paths[-1])
    return paths


# ---------------------------------------------------------------------------------------------
# Command line


def _open(path: Path, what: str, step: str) -> xr.Dataset:
    try:
        with xr.open_dataset(path) as data:
            return data.load()
    except FileNotFoundError as e:
        raise FileNotFoundError(f"{what} {path} does not exist; run the {step} step first") from e
    except (ValueError, OSError) as e:  # not netCDF: xarray lists its engines over many lines
        raise ValueError(f"{what} {path} is not a netCDF file lltax can read ({type(e).__name__}); pass the file the {step} step writes") from None


def run_plot(args: argparse.Namespace) -> int:
    from lltax.config import parse_settings

    settings = parse_settings(args.settings, "plots")
    dataset = _open(args.dataset, "dataset", "aggregate")
    phases = _open(args.phases, "phases file", "classify")
    plot_all(dataset, phases, args.out_dir, **settings)
    return 0


def add_cli(subparsers) -> None:
    parser = subparsers.add_parser("plot", help="draw the phase diagrams: panels, phases, lines and curves figures")
    parser.add_argument("--dataset", required=True, type=Path, help="merged per-seed results (dataset.nc)")
    parser.add_argument("--phases", required=True, type=Path, help="classified cells (phases.nc)")
    parser.add_argument("--settings", default="{}", help="the config's plots section as one JSON object")
    parser.add_argument("--out-dir", required=True, type=Path, help="folder for panels/phases/lines/curves.<format>")
    parser.set_defaults(func=run_plot)

"""The figures of an experiment: phase-diagram panels, the phase map, a 1D metric view, curve profiles.

``plot_all`` reads the merged ``dataset.nc`` and the classified ``phases.nc`` and writes four
files with fixed names (``FIGURES``), so a Snakemake rule can declare them:

- ``panels.<format>``: one panel per metric over two grid axes, plus the phase map (Yang et al.
  2021, Figure 2); one row per value of every other grid axis that varies;
- ``phases.<format>``: the phase map alone, with phase, confidence and the thresholds;
- ``lines.<format>``: plots.line_metric against plots.y, one line per plots.line_group value
  (the paper's Figure 7e);
- ``curves.<format>``: training loss and error along the mode-connecting curves (Garipov et al.
  2018).

The figure functions live in ``figures.maps`` (2D) and ``figures.lines`` (1D), shared pieces in
``figures.grid``; the per-cell landscape picture in ``figures.landscape``. Every figure is
written by ``save_figure``, with fixed metadata, so equal data give equal bytes in every format.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import xarray as xr

from lltax.config.schema import section_settings
from lltax.contract import FGE_FIGURE, FIGURES
from lltax.figures.ensembles import ensembles_figure
from lltax.figures.grid import check_axes, check_same_grid
from lltax.figures.lines import curves_figure, lines_figure, metric_mean_and_spread, resolve_line_group
from lltax.figures.maps import panels_figure, phases_figure
from lltax.figures.save import FORMATS, save_figure

__all__ = ["FIGURES", "curves_figure", "lines_figure", "panels_figure", "phases_figure", "plot_all"]

logger = logging.getLogger(__name__)


def plot_all(
    dataset: xr.Dataset,
    phases: xr.Dataset,
    out_dir: str | Path,
    **settings,
) -> list[Path]:
    """Draw every figure and write ``<out_dir>/<name>.<format>`` for each name in FIGURES.

    ``settings`` is the ``plots`` config section (x, y, format, dpi, line_metric, line_group;
    keys left out take the schema's defaults). All of it is checked before anything is
    written, so a bad setting leaves no files.
    """
    s = section_settings("plots", settings, where="plot setting")
    x, y, format, dpi, line_metric, line_group = (s[key] for key in ("x", "y", "format", "dpi", "line_metric", "line_group"))
    check_axes(dataset, phases, x, y)
    check_same_grid(dataset, phases)
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
    # fge.enabled (the dataset's config says; every dataset has the variables, NaN without FGE):
    # the ensembles figure too, the workflow's declared output.
    config = json.loads(dataset.attrs.get("config", "{}"))
    if (config.get("fge") or {}).get("enabled", "fge_test_acc" in dataset and bool(dataset["fge_test_acc"].notnull().any())):
        figures[FGE_FIGURE] = ensembles_figure(dataset, phases, x=x, y=y)
    paths = []
    for name in figures:
        paths.append(save_figure(figures[name], Path(out_dir) / f"{name}.{format}", format=format, dpi=dpi))
        logger.info("wrote %s", paths[-1])
    return paths

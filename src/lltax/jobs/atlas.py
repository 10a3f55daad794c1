"""``lltax atlas``: one representative cell per phase, their landscapes side by side on one scale.

The representative of a phase is, among the cells with a landscape.nc, the one whose phase
has the highest measured confidence (cells without one come after, in grid order), so the
figure shows what the classification is surest of.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
import xarray as xr

from lltax.config import parse_settings
from lltax.contract import AXES, PHASES
from lltax.figures.landscape import atlas_figure
from lltax.figures.save import save_figure
from lltax.grid import format_value, parse_cell_path

logger = logging.getLogger(__name__)

SHOWN_PHASES = tuple(phase for phase in PHASES if phase not in ("diverged", "unknown"))

HELP = "one representative cell per phase, landscapes side by side on one scale (atlas.png)"
ARGUMENTS = {
    "landscapes": {},
    "phases": {"required": False, "default": None, "help": "phases.nc of the run; without it every given landscape is drawn, in order"},
    "settings": {"help": "the config section 'landscape' as JSON (uses levels and color_limits)"},
    "out": {"nargs": None, "help": "figure to write, e.g. figures/atlas.png"},
}


def representatives(paths: list[str], phases: xr.Dataset) -> list[tuple[str, str, dict]]:
    """(phase, landscape path, cell) per phase present (I .. IV-B), in that order."""
    chosen: dict[str, tuple[float, int, str, dict]] = {}
    for order, path in enumerate(paths):
        cell = {axis: value for axis, value in parse_cell_path(str(path)).items() if axis in AXES}
        entry = phases.sel(cell)
        phase = entry["phase"].item()
        phase = phase.decode() if isinstance(phase, bytes) else phase
        if phase not in SHOWN_PHASES:
            continue
        confidence = float(entry["phase_confidence"].item()) if "phase_confidence" in entry else np.nan
        rank = (-confidence if np.isfinite(confidence) else np.inf, order)
        if phase not in chosen or rank < chosen[phase][:2]:
            chosen[phase] = (*rank, str(path), cell)
    return [(phase, chosen[phase][2], chosen[phase][3]) for phase in SHOWN_PHASES if phase in chosen]


def run(args: argparse.Namespace) -> int:
    settings = parse_settings(args.settings, "landscape")
    datasets, titles = [], []
    if args.phases:
        phases = xr.load_dataset(args.phases)
        varying = [axis for axis in AXES if phases.sizes.get(axis, 1) > 1]
        for phase, path, cell in representatives(args.landscapes, phases):
            logger.info("phase %s: %s", phase, path)
            datasets.append(xr.load_dataset(path))
            titles.append(f"phase {phase}: " + ", ".join(f"{axis} {format_value(cell[axis])}" for axis in varying))
    else:  # chosen cells, e.g. of several experiments: titled by model and cell
        for path in args.landscapes:
            dataset = xr.load_dataset(path)
            cell = {axis: value for axis, value in parse_cell_path(str(path)).items() if axis in AXES}
            datasets.append(dataset)
            titles.append(f"{dataset.attrs.get('model', '?')}: width {format_value(cell.get('width', '?'))}")
    save_figure(
        atlas_figure(datasets, titles, settings.get("color_limits"), settings.get("levels")),
        args.out,
        format=Path(args.out).suffix.lstrip("."),
        dpi=150,
    )
    return 0

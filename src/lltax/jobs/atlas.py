"""``lltax atlas``: one representative cell per phase, their landscapes side by side on one scale.

The representative of a phase is, among the cells with a landscape.nc, the one whose phase
has the highest measured confidence (cells without one come after, in grid order), so the
figure shows what the classification is surest of.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np
import xarray as xr

from lltax.config.grid import format_value, parse_cell_path
from lltax.config.schema import parse_settings
from lltax.contract import AXES, PHASES
from lltax.figures.landscape import atlas_figure
from lltax.figures.save import save_figure

logger = logging.getLogger(__name__)

SHOWN_PHASES = tuple(phase for phase in PHASES if phase not in ("diverged", "unknown"))

HELP = "one representative cell per phase, landscapes side by side on one scale (atlas.png)"
ARGUMENTS = {
    "landscapes": {},
    "phases": {"required": False, "default": None, "help": "phases.nc of the run; without it every given landscape is drawn, in order"},
    "settings": {"help": "the config section 'landscape' as JSON (uses levels and color_limits)"},
    "out": {"nargs": None, "help": "figure to write, e.g. figures/atlas.png"},
}


def check_of_run(landscape: xr.Dataset, path: str, phases: xr.Dataset, phases_path) -> xr.Dataset:
    """A landscape drawn as a phase's representative must be of the run ``phases`` classified:
    its model and seeds those of the phases' config (the config it was computed under; a
    phases.nc carries no checkpoint checksums to compare beyond that). Refused naming both."""
    config = json.loads(phases.attrs.get("config", "{}"))
    model = config.get("model", {}).get("name")
    seeds = config.get("seeds")
    if model is not None and landscape.attrs.get("model") != model:
        raise ValueError(
            f"{path} is a landscape of model {landscape.attrs.get('model')!r}, but {phases_path} classified a run of {model!r}"
        )
    recorded = np.atleast_1d(landscape.attrs.get("seeds", [])).tolist()
    if isinstance(seeds, list) and not set(recorded) <= set(seeds):
        raise ValueError(f"{path} was computed from seeds {recorded}, not seeds of the run {phases_path} classified ({seeds})")
    return landscape


def representatives(paths: list[str], phases: xr.Dataset) -> list[tuple[str, str, dict]]:
    """(phase, landscape path, cell) per phase present (I .. IV-B), in that order."""
    chosen: dict[str, tuple[float, int, str, dict]] = {}
    for order, path in enumerate(paths):
        cell = {axis: value for axis, value in parse_cell_path(str(path)).items() if axis in AXES}
        try:
            entry = phases.sel(cell)
        except KeyError:
            raise ValueError(f"{path} is of a cell the phases file does not hold ({cell}): another run's landscape") from None
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
            datasets.append(check_of_run(xr.load_dataset(path), path, phases, args.phases))
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

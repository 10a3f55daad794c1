"""``lltax basin``: the landscape measured for every model of the grid: basin width along random
filter-normalized directions (Huang et al. 2019) and, when asked, the share of a plane around
the model where the Hessian says the surface is locally convex (Li et al. 2018's Figure 7)."""

from __future__ import annotations

import argparse
import logging
import math
import time

import numpy as np
import torch

from lltax.config.schema import parse_settings
from lltax.jobs.metric_inputs import is_diverged, load_cell_data, load_model
from lltax.metrics.directions import direction_space, random_direction
from lltax.metrics.eigenratio import eigenvalue_ratio, eigenvalue_ratio_grid
from lltax.metrics.landscape import grid_points, training_sample
from lltax.metrics.surface import basin_radii
from lltax.runtime.device import resolve_device
from lltax.storage import checkpoint
from lltax.storage.atomic_files import one_output_each, write_json

logger = logging.getLogger(__name__)

HELP = "basin width along random filter-normalized directions and local convexity share of each checkpoint"
ARGUMENTS = {
    "checkpoints": {},
    "settings": {"help": "the config section 'basin' as JSON"},
    "device": {},
    "data_dir": {},
    "out": {"help": "output basin.json, one per checkpoint"},
}


def convex_share(model, directions: list, inputs, targets, settings: dict) -> tuple[float, list]:
    """Share of a convexity_points^2 grid on the plane of the first two directions where
    lambda_min >= -convexity_tolerance x lambda_max (for lambda_min < 0: |lambda_min /
    lambda_max| <= tolerance, Li et al.'s reading of their Figure 7 map); with the signed
    ratios lambda_min / lambda_max measured. The Hessian is over the tensors of two or more
    dimensions (convexity_definition li2018, Li et al.'s) or over every parameter (signed)."""
    coords = grid_points(-settings["convexity_radius"], settings["convexity_radius"], settings["convexity_points"])
    definition = settings.get("convexity_definition", "li2018")
    low, high, _ = eigenvalue_ratio_grid(
        model, direction_space(model), directions[:2], coords, inputs, targets, seed=settings["seed"], definition=definition
    )
    ratios = [float(r) for r in eigenvalue_ratio(low, high, "signed").ravel()]
    finite = [r for r in ratios if math.isfinite(r)]
    share = sum(r >= -settings["convexity_tolerance"] for r in finite) / len(finite) if finite else math.nan
    return share, ratios


def basin_of_checkpoint(path: str, settings: dict, device, data_dir: str | None) -> dict:
    """The ``basin.json`` record of one checkpoint."""
    model, meta = load_model(path, device)
    record = {"basin_width": math.nan, "basin_width_spread": math.nan, "basin_censored": math.nan, "convex_share": math.nan, "radii": []}
    if is_diverged(model, meta):
        logger.warning("%s is diverged: writing NaN basin measurements", path)
    else:
        data = load_cell_data(meta, device, data_dir)
        inputs, targets = training_sample(data.x_train, data.y_train, settings["num_samples"], settings["seed"])
        generator = torch.Generator().manual_seed(settings["seed"])
        space = direction_space(model)
        directions = [random_direction(space, generator) for _ in range(settings["directions"])]
        radii, censored = basin_radii(
            model,
            directions,
            inputs,
            targets,
            rise=settings["rise"],
            max_radius=settings["max_radius"],
            coarse=settings["coarse"],
            refine=settings["refine"],
        )
        record.update(
            basin_width=float(np.mean(radii)),
            basin_width_spread=float(np.std(radii, ddof=1)) if len(radii) > 1 else math.nan,
            basin_censored=float(np.mean(censored)),
            radii=[float(r) for r in radii],
            censored=[bool(c) for c in censored],
        )
        if settings["convexity_points"]:
            record["convex_share"], record["eigenvalue_ratios"] = convex_share(model, directions, inputs, targets, settings)
    return {**record, "settings": settings, **checkpoint.provenance(meta, device)}


def run(args: argparse.Namespace) -> int:
    settings = parse_settings(args.settings, "basin")
    device = resolve_device(args.device)
    for path, out in one_output_each(args.checkpoints, args.out, "checkpoint"):  # a cell's seeds in one process
        started = time.perf_counter()
        record = basin_of_checkpoint(path, {k: v for k, v in settings.items() if k != "enabled"}, device, args.data_dir)
        logger.info(
            "%s: basin width %.4g (spread %.3g, %.0f%% censored), convex share %s (%.1f s)",
            path,
            record["basin_width"],
            record["basin_width_spread"],
            100 * record["basin_censored"],
            record["convex_share"],
            time.perf_counter() - started,
        )
        write_json(out, record)
    return 0

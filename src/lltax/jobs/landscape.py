"""``lltax landscape``: 1D interpolation between two seeds and the 2D filter-normalized surface
around the first (Li et al. 2018), as landscape.nc and its figure."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import xarray as xr

from lltax import checkpoint
from lltax.config import parse_settings
from lltax.device import resolve_device
from lltax.figures.landscape import landscape_figure
from lltax.figures.save import FORMATS, save_figure
from lltax.grid import canonical_json
from lltax.io import atomic_path
from lltax.jobs.inputs import check_same_cell, is_diverged, load_cell_data, load_model
from lltax.metrics.evaluate import evaluate_model
from lltax.metrics.landscape import grid_points, interpolate_1d, random_directions, surface_2d, training_sample

logger = logging.getLogger(__name__)

HELP = "1D linear interpolation between two seeds and 2D filter-normalized loss surface (Li et al. 2018)"
ARGUMENTS = {
    "checkpoints": {"nargs": 2, "metavar": ("A", "B"), "help": "two seeds' checkpoints of one cell; the surface is around A"},
    "settings": {"help": "the config section 'landscape' as JSON"},
    "device": {},
    "data_dir": {},
    "out": {"nargs": None, "help": "output netCDF file, e.g. <cell>/landscape.nc"},
    "figure": {"help": "also draw the figure, e.g. <cell>/landscape.png"},
}


def landscape_dataset(
    interpolation: Mapping[str, np.ndarray],
    endpoints: Mapping[str, Sequence],
    coords: tuple[Sequence[float], Sequence[float]],
    surface: np.ndarray,
    attrs: Mapping,
) -> xr.Dataset:
    """interp_loss/acc(alpha), endpoint_loss/acc(seed), surface_loss(a, b), with units and long names.

    ``endpoints`` holds ``seed``, ``loss`` and ``accuracy`` of the two end models as trained
    (eval mode, their own BatchNorm statistics), which the interpolation's ends match only
    when the model has no BatchNorm.
    """
    a_values, b_values = coords
    return xr.Dataset(
        {
            "interp_loss": ("alpha", interpolation["loss"], {"units": "nats", "long_name": "training loss along the linear interpolation"}),
            "interp_acc": (
                "alpha",
                interpolation["accuracy"],
                {"units": "percent", "long_name": "training accuracy along the linear interpolation"},
            ),
            "endpoint_loss": (
                "seed",
                np.asarray(endpoints["loss"], dtype=np.float64),
                {"units": "nats", "long_name": "training loss of the end models as trained"},
            ),
            "endpoint_acc": (
                "seed",
                np.asarray(endpoints["accuracy"], dtype=np.float64),
                {"units": "percent", "long_name": "training accuracy of the end models as trained"},
            ),
            "surface_loss": (("a", "b"), surface, {"units": "nats", "long_name": "training loss on the filter-normalized plane"}),
        },
        coords={
            "alpha": ("alpha", interpolation["alpha"], {"long_name": "interpolation coefficient (0 = seeds[0], 1 = seeds[1])"}),
            "seed": ("seed", np.asarray(endpoints["seed"], dtype=np.int64), {"long_name": "seed of the end model"}),
            "a": ("a", np.asarray(a_values, dtype=np.float64), {"long_name": "coefficient of direction d1 around seeds[0]"}),
            "b": ("b", np.asarray(b_values, dtype=np.float64), {"long_name": "coefficient of direction d2 around seeds[0]"}),
        },
        attrs=dict(attrs),
    )


def run(args: argparse.Namespace) -> int:
    settings = parse_settings(args.settings, "landscape")
    figure_format = Path(args.figure).suffix.lstrip(".") if args.figure else None
    if args.figure and figure_format not in FORMATS:  # before any work, not after landscape.nc is written
        raise ValueError(f"--figure {args.figure}: the format {figure_format!r} is not supported; name a .png, .pdf or .svg file")
    device = resolve_device(args.device)
    path_a, path_b = args.checkpoints
    model_a, meta_a = load_model(path_a, device)
    model_b, meta_b = load_model(path_b, device)
    check_same_cell([meta_a, meta_b], args.checkpoints)
    alphas = grid_points(settings["range_1d"][0], settings["range_1d"][1], settings["points_1d"])
    grid = grid_points(-settings["range_2d"], settings["range_2d"], settings["points_2d"])
    coords = (grid, grid)
    diverged_a, diverged_b = is_diverged(model_a, meta_a), is_diverged(model_b, meta_b)

    data = load_cell_data(meta_a, device, args.data_dir)
    inputs, targets = training_sample(data.x_train, data.y_train, settings["num_samples"], settings["seed"])
    logger.info("landscape of seeds %s and %s on %d training samples, device %s", meta_a["seed"], meta_b["seed"], len(inputs), device)

    nan = float("nan")
    endpoints = {"seed": [meta_a["seed"], meta_b["seed"]], "loss": [], "accuracy": []}
    for model, diverged in ((model_a, diverged_a), (model_b, diverged_b)):
        loss, accuracy = (nan, nan) if diverged else evaluate_model(model, inputs, targets)
        endpoints["loss"].append(loss)
        endpoints["accuracy"].append(accuracy)
    if diverged_a or diverged_b:
        logger.warning(
            "a model diverged (seed %s: %s, seed %s: %s); interpolation is NaN", meta_a["seed"], diverged_a, meta_b["seed"], diverged_b
        )
        interpolation = {"alpha": alphas, "loss": np.full(len(alphas), nan), "accuracy": np.full(len(alphas), nan)}
    else:
        interpolation = interpolate_1d(model_a, model_b, inputs, targets, alphas)
        logger.info("interpolation loss: min %.4g, max %.4g", interpolation["loss"].min(), interpolation["loss"].max())
    if diverged_a:
        surface = np.full((len(grid), len(grid)), np.nan)
    else:
        surface = surface_2d(model_a, inputs, targets, coords, random_directions(model_a, settings["seed"]))

    attrs = {
        "seeds": np.asarray([meta_a["seed"], meta_b["seed"]], dtype=np.int64),
        "settings": canonical_json(settings),
        "cell": canonical_json(meta_a["cell"]),
        "model": meta_a["model"],
        "num_samples": len(inputs),
        "batchnorm_1d": "running statistics recomputed on the sample at every alpha",
        "batchnorm_2d": "eval mode with seeds[0]'s running statistics (Li et al. 2018)",
        "directions": "Gaussian, filter-normalized, biases and BatchNorm parameters ignored (Li et al. 2018)",
        "versions": canonical_json(checkpoint.versions()),
    }
    dataset = landscape_dataset(interpolation, endpoints, coords, surface, attrs)
    with atomic_path(args.out) as tmp:
        dataset.to_netcdf(tmp, engine="netcdf4")
    if args.figure:
        save_figure(landscape_figure(dataset), args.figure, format=figure_format, dpi=150)
    return 0

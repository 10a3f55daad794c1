"""``lltax landscape``: the landscape pictures of one cell (Li et al. 2018; Garipov et al. 2018)
as landscape.nc (``lltax landscape-figure`` draws it, a job of its own).

Around the first checkpoint (s0): the 1D linear interpolation to the second (s1), the 1D plot
along direction d1, the 2D surface on the plane (d1, d2), training and test loss and accuracy
at every point; optionally the smallest/largest Hessian eigenvalue and their ratio on a coarser
grid, and the Hessian's eigenvalue density at s0 (stochastic Lanczos quadrature).
"""

from __future__ import annotations

import argparse
import logging

import numpy as np
import torch
import xarray as xr

from lltax.config.grid import COMPARABLE_AXES, canonical_json, canonical_value, cell_path
from lltax.config.schema import parse_settings
from lltax.jobs.metric_inputs import check_same_cell, is_diverged, load_cell_data, load_model
from lltax.metrics.eigenratio import eigenvalue_ratio_grid
from lltax.metrics.evaluate import evaluate_model
from lltax.metrics.hvp import HessianOperator
from lltax.metrics.landscape import grid_points, interpolate_1d, training_sample
from lltax.metrics.planes import CURVE_POINTS, MODEL_MARGIN, plane, plane_extent
from lltax.metrics.spectrum import slq_quadrature, spectral_density
from lltax.metrics.surface import evaluate_points
from lltax.runtime.device import resolve_device, runtime_info
from lltax.runtime.memory import DEFAULT_BUDGET_GB, GB, job_footprint, points_per_pass
from lltax.storage import checkpoint
from lltax.storage.atomic_files import atomic_path
from lltax.training.model_mode import mode

logger = logging.getLogger(__name__)

HELP = "landscape pictures of a cell: interpolation, 1D and 2D plots on chosen directions, eigenvalue ratios, spectrum (Li et al. 2018)"
ARGUMENTS = {
    "checkpoints": {"help": "two or three seeds' checkpoints of one cell; the pictures are around the first"},
    "settings": {"help": "the config section 'landscape' as JSON"},
    "device": {},
    "data_dir": {},
    "memory_budget_gb": {},
    "out": {"nargs": None, "help": "output netCDF file, e.g. <cell>/landscape.nc (lltax landscape-figure draws it)"},
    "across_cells": {},
    "curves": {
        "required": False,
        "default": None,
        "nargs": None,
        "help": "with directions: curve, the curve fitted from s0 to s1 (<cell>/pair=A-B/curve.pt)",
    },
}


# Keys of the section 'landscape' that only the figures read (lltax landscape-figure, atlas).
DRAWING_KEYS = ("levels", "color_limits")
SPLIT_NAMES = {"train": "training", "test": "test"}
QUANTITIES = {"loss": ("nats", "loss"), "acc": ("percent", "accuracy")}


def samples(data, settings: dict) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """The splits every point is evaluated on: fixed samples of the cell's data (or all of it)."""
    if settings["full_data"]:
        splits = {"train": (data.x_train, data.y_train), "test": (data.x_test, data.y_test)}
    else:
        splits = {"train": training_sample(data.x_train, data.y_train, settings["num_samples"], settings["seed"])}
        if settings["test_samples"]:
            splits["test"] = training_sample(data.x_test, data.y_test, settings["test_samples"], settings["seed"])
    return splits


def load_checked_curve(path: str, metas: list[dict]) -> dict:
    """The curve file ``path``, refused unless it was fitted from s0's model to s1's."""
    curve = checkpoint.load_curve(path)
    meta = curve["meta"]
    expected = {str(m["seed"]): m.get("state_sha256") for m in metas[:2]}
    if [meta.get("seed_a"), meta.get("seed_b")] != [m["seed"] for m in metas[:2]] or meta.get("checkpoints_sha256") != expected:
        raise ValueError(
            f"{path} was fitted between other models (seeds {meta.get('seed_a')} -> {meta.get('seed_b')}, checksums "
            f"{meta.get('checkpoints_sha256')}) than the first two checkpoints ({expected}); pass the curve of s0 -> s1"
        )
    return curve


def b_range(settings: dict) -> float:
    """The plane's extent along d2: range_b, or range_2d as along d1."""
    return settings["range_b"] if settings["range_b"] is not None else settings["range_2d"]


def plane_batchnorm(settings: dict) -> str:
    """batchnorm_2d, or where null each paper's own: recompute for planes through models (seeds,
    curve: Garipov et al.'s plane.py runs update_bn at every point), trained otherwise (Li et
    al.'s random directions keep the model's running statistics)."""
    if settings.get("batchnorm_2d") is not None:
        return settings["batchnorm_2d"]
    return "recompute" if settings["directions"] in ("seeds", "curve") else "trained"


def eigenvalue_maps(model, origin: dict, directions: list, settings: dict, train: tuple, extent: dict) -> dict:
    """Smallest and largest Hessian eigenvalue and their ratio on a ratio_points^2 grid over
    the surface's ``extent`` (ratio_definition: li2018 = Li et al.'s Figure 7, signed =
    lltax's; metrics.surface)."""
    grid = grid_points(*extent["a"], settings["ratio_points"])
    grid_b = grid_points(*extent["b"], settings["ratio_points"])
    definition = settings.get("ratio_definition", "li2018")
    low, high, ratio = eigenvalue_ratio_grid(
        model, origin, directions, grid, *train, seed=settings["seed"], coords_b=grid_b, definition=definition
    )
    dims = ("ra", "rb")
    over = "tensors of >= 2 dimensions" if definition == "li2018" else "every trainable parameter"
    ratio_name = (
        "|lambda_min / lambda_max| (Li et al. Figure 7: near 0 = locally convex)"
        if definition == "li2018"
        else "lambda_min / lambda_max (>= 0: locally convex)"
    )
    return {
        "coords": {"ra": ("ra", grid), "rb": ("rb", grid_b)},
        "min_eigenvalue": (dims, low, {"units": "1", "long_name": f"smallest Hessian eigenvalue (training loss; over {over})"}),
        "max_eigenvalue": (dims, high, {"units": "1", "long_name": f"largest Hessian eigenvalue (training loss; over {over})"}),
        "eigenvalue_ratio": (dims, ratio, {"units": "1", "long_name": ratio_name, "definition": definition}),
    }


def spectrum(model, settings: dict, train: tuple) -> dict:
    """The eigenvalue density at ``model`` by SLQ, on a grid over its nodes with margin."""
    with mode(model, training=False):
        operator = HessianOperator(model, *train)
        nodes, weights = slq_quadrature(
            operator.matvec,
            operator.dimension,
            steps=settings["spectrum_steps"],
            runs=settings["spectrum_runs"],
            seed=settings["seed"],
            dtype=operator.dtype,
            device=operator.device,
        )
    steps = max(len(n) for n in nodes)
    padded = [np.pad(a, (0, steps - len(a)), constant_values=np.nan) for a in nodes]
    padded_weights = [np.pad(w, (0, steps - len(w)), constant_values=np.nan) for w in weights]
    low, high = float(np.min(np.concatenate(nodes))), float(np.max(np.concatenate(nodes)))
    margin = 0.05 * (high - low) or 1.0
    grid = np.linspace(low - margin, high + margin, 400)
    sigma = 0.01 * (high - low + 2 * margin)
    density = spectral_density(nodes, weights, grid, sigma)
    return {
        "coords": {"eigenvalue": ("eigenvalue", grid), "run": ("run", np.arange(len(nodes))), "node": ("node", np.arange(steps))},
        "spectral_density": (
            ("eigenvalue",),
            density,
            {"units": "1", "long_name": f"Hessian eigenvalue density at s0 (SLQ, Gaussian width {sigma:.3g})"},
        ),
        "spectrum_nodes": (("run", "node"), np.asarray(padded), {"units": "1", "long_name": "Ritz values of each Lanczos run"}),
        "spectrum_weights": (
            ("run", "node"),
            np.asarray(padded_weights),
            {"units": "1", "long_name": "squared first eigenvector components (quadrature weights)"},
        ),
    }


def per_split(prefix: str, dims: tuple, values: dict, what: str) -> dict:
    """ "<prefix>_<split>_<loss|acc>" variables from ``evaluate_points``-style results."""
    variables = {}
    for key, array in values.items():
        split, quantity = key.rsplit("_", 1)
        units, name = QUANTITIES[quantity]
        variables[f"{prefix}_{split}_{quantity}"] = (dims, array, {"units": units, "long_name": f"{SPLIT_NAMES[split]} {name} {what}"})
    return variables


def check_comparable(metas: list[dict], paths: list[str]) -> None:
    """Models of two cells on one landscape: the same network and data (one interpolation, one
    sample), cells that differ only in ``COMPARABLE_AXES``."""

    def identity(meta: dict) -> dict:
        cell = {axis: canonical_value(value) for axis, value in meta["cell"].items() if axis not in COMPARABLE_AXES}
        return {"cell": cell, "model": meta["model"], "dataset": meta["dataset"]["name"]}

    if len(metas) != 2:
        raise ValueError(f"--across-cells compares two checkpoints (cell A's and cell B's), got {len(metas)}")
    if identity(metas[0]) != identity(metas[1]):
        raise ValueError(
            f"{paths[0]} is {identity(metas[0])} but {paths[1]} is {identity(metas[1])}: compared models share the network "
            f"and data and their cells differ only in {list(COMPARABLE_AXES)}"
        )
    if metas[0]["cell"] == metas[1]["cell"]:
        raise ValueError(f"--across-cells: {paths[0]} and {paths[1]} are of the same cell; compare seeds without --across-cells")


def landscape_of_cell(
    paths: list[str],
    settings: dict,
    device,
    data_dir: str | None,
    across_cells: bool = False,
    curve_file: str | None = None,
    memory_budget_gb: float = DEFAULT_BUDGET_GB,
) -> xr.Dataset:
    """The landscape.nc dataset of the checkpoints ``paths`` (2 or 3, one cell), or with
    ``across_cells`` the comparison.nc of two cells' models (cell A's first); ``curve_file``
    is the curve s0 -> s1 that directions: curve needs."""
    loaded = [load_model(path, device) for path in paths]
    models, metas = [m for m, _ in loaded], [meta for _, meta in loaded]
    (check_comparable if across_cells else check_same_cell)(metas, paths)
    curve = load_checked_curve(curve_file, metas) if settings["directions"] == "curve" else None
    # pca's trajectory is read (and a missing one refused) before any point is evaluated.
    diverged = [is_diverged(m, meta) for m, meta in loaded]
    trajectory = checkpoint.load_trajectory(paths[0]) if settings["directions"] == "pca" and not diverged[0] else None
    data = load_cell_data(metas[0], device, data_dir)
    splits = samples(data, settings)
    train = splits["train"]
    nan = float("nan")
    alphas = grid_points(*settings["range_1d"], settings["points_1d"])
    ray = grid_points(-settings["range_2d"], settings["range_2d"], settings["points_1d"])
    # Stacked points hold a copy of the weights and a batch (evaluate_points': 1000) of
    # activations each: as many as fit the memory budget, at most landscape.stack.
    parameters, activations, held = job_footprint(models[0], metas[0], data)
    stack = points_per_pass(memory_budget_gb * GB, parameters, activations, held=held, batch_size=1000, stack=settings["stack"])
    endpoints = {f"{s}_{q}": np.full(len(models), nan) for s in splits for q in QUANTITIES}
    for index, (model, bad) in enumerate(zip(models, diverged)):
        for name, (x, y) in splits.items():
            if not bad:
                endpoints[f"{name}_loss"][index], endpoints[f"{name}_acc"][index] = evaluate_model(model, x, y)
    variables = per_split("endpoint", ("model",), endpoints, "of each model as trained")
    if diverged[0] or diverged[1]:
        logger.warning("a model diverged (%s); the interpolation is NaN", dict(zip(paths, diverged)))
        line = {f"{s}_{q}": np.full(len(alphas), nan) for s in splits for q in QUANTITIES}
    else:
        result = interpolate_1d(
            models[0],
            models[1],
            *train,
            alphas,
            recompute_batchnorm=settings["batchnorm_1d"] == "recompute",
            extra_splits={k: v for k, v in splits.items() if k != "train"},
        )
        line = {
            f"{s}_{q}": result[f"{'' if s == 'train' else s + '_'}{'accuracy' if q == 'acc' else q}"] for s in splits for q in QUANTITIES
        }
    variables |= per_split("interp", ("alpha",), line, "along the linear interpolation s0 -> s1")
    coords = {
        "alpha": ("alpha", alphas),
        "model": ("model", np.arange(len(metas))),
        "seed": ("model", np.asarray([m["seed"] for m in metas])),
        "r": ("r", ray),
    }
    options = {"batchnorm": plane_batchnorm(settings), "batchnorm_inputs": train[0], "stack": stack}
    # The plane lies around s0 (and, for directions: seeds, through the other seeds).
    spanning = diverged[: {"seeds": 3, "curve": 2}.get(settings["directions"], 1)]
    if curve is not None and curve["meta"]["diverged"]:
        spanning = [*spanning, True]
    if any(spanning):
        logger.warning("a model the plane needs diverged (%s): the surface is NaN", dict(zip(paths, spanning)))
        extent = plane_extent({}, settings["range_2d"], b_range(settings), settings["points_2d"])
        grid, grid_b = (grid_points(*extent[axis], settings["points_2d"]) for axis in "ab")
        coords |= {"a": ("a", grid), "b": ("b", grid_b)}
        variables |= per_split("ray", ("r",), {f"{s}_{q}": np.full(len(ray), nan) for s in splits for q in QUANTITIES}, "")
        variables |= per_split(
            "surface", ("a", "b"), {f"{s}_{q}": np.full((len(grid), len(grid_b)), nan) for s in splits for q in QUANTITIES}, ""
        )
    else:
        origin, directions, extra = plane(models, settings, train, trajectory, curve)
        extent = plane_extent(extra, settings["range_2d"], b_range(settings), settings["points_2d"])
        grid, grid_b = (grid_points(*extent[axis], settings["points_2d"]) for axis in "ab")
        coords |= {"a": ("a", grid), "b": ("b", grid_b)}
        if "path_coordinates" in extra:
            coords["epoch"] = ("epoch", np.arange(len(extra["path_coordinates"][1])))
        if "curve_coordinates" in extra:
            coords["t"] = ("t", np.linspace(0.0, 1.0, CURVE_POINTS))
        variables |= extra
        variables |= per_split(
            "ray", ("r",), evaluate_points(models[0], origin, directions[:1], [ray], splits, **options), "along d1 around s0"
        )
        surface = evaluate_points(models[0], origin, directions, [grid, grid_b], splits, **options)
        variables |= per_split("surface", ("a", "b"), surface, "on the plane (d1, d2) around s0")
        logger.info("surface: training loss %.4g .. %.4g", np.nanmin(surface["train_loss"]), np.nanmax(surface["train_loss"]))
        for extra_part in (
            [eigenvalue_maps(models[0], origin, directions, settings, train, extent)] if settings["ratio_points"] else []
        ) + ([spectrum(models[0], settings, train)] if settings["spectrum_steps"] else []):
            coords |= extra_part.pop("coords")
            variables |= extra_part
    attrs = {
        "seeds": np.asarray([m["seed"] for m in metas], dtype=np.int64),
        # What shaped the numbers: the drawing's keys (levels, color_limits) are the figure job's.
        "settings": canonical_json({k: v for k, v in settings.items() if k not in DRAWING_KEYS}),
        "memory_budget_gb": memory_budget_gb,
        "stack_used": stack,
        "cell": canonical_json(metas[0]["cell"]),
        "model": metas[0]["model"],
        "num_samples": len(train[1]),
        # A comparison's two models may share a seed: keyed by A and B there.
        "checkpoints_sha256": canonical_json(
            {name: m.get("state_sha256") for name, m in zip("AB", metas)}
            if across_cells
            else {str(m["seed"]): m.get("state_sha256") for m in metas}
        ),
        "batchnorm_1d": settings["batchnorm_1d"],
        "batchnorm_2d": plane_batchnorm(settings),
        "directions": settings["directions"],
        # The surface's range along d1 and d2 (a, b), and the margin kept around the models of
        # a plane through them (plane_extent; null: the plane is centred on s0).
        "plane_extent": canonical_json(
            {**{axis: list(extent[axis]) for axis in "ab"}, "model_margin": MODEL_MARGIN if "model_coordinates" in variables else None}
        ),
        "versions": canonical_json(checkpoint.versions()),
        "runtime": canonical_json(runtime_info(train[0].device)),
    }
    if across_cells:
        coords["cell"] = ("model", np.asarray([cell_path(m["cell"]) for m in metas]))
        attrs["cell"] = canonical_json([m["cell"] for m in metas])
        attrs["model_labels"] = canonical_json(comparison_labels(metas))
    return xr.Dataset(variables, coords=coords, attrs=attrs)


def comparison_labels(metas: list[dict]) -> list[str]:
    """ "A: batch_size=64" and "B: batch_size=512": each model by the axes the cells differ in."""
    differing = [axis for axis in COMPARABLE_AXES if canonical_value(metas[0]["cell"][axis]) != canonical_value(metas[1]["cell"][axis])]
    return [f"{name}: " + ", ".join(f"{axis}={canonical_value(m['cell'][axis])!r}" for axis in differing) for name, m in zip("AB", metas)]


def run(args: argparse.Namespace) -> int:
    settings = parse_settings(args.settings, "landscape")
    if settings["directions"] == "curve" and not args.curves:
        raise ValueError("landscape.directions: curve needs the curve file of s0 -> s1: pass --curves <cell>/pair=A-B/curve.pt")
    if not 2 <= len(args.checkpoints) <= 3:
        raise ValueError(f"--checkpoints takes 2 or 3 seeds' checkpoints of one cell, got {len(args.checkpoints)}")
    dataset = landscape_of_cell(
        args.checkpoints,
        settings,
        resolve_device(args.device),
        args.data_dir,
        args.across_cells,
        args.curves if settings["directions"] == "curve" else None,
        args.memory_budget_gb,
    )
    with atomic_path(args.out) as tmp:
        dataset.to_netcdf(tmp, engine="netcdf4")
    return 0

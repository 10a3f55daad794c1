"""Classic loss-landscape pictures: 1D linear interpolation and 2D filter-normalized surfaces.

- 1D (Goodfellow et al. 2015, "Qualitatively characterizing neural network optimization
  problems"; Li et al. 2018): the training loss and accuracy along the straight line
  theta(alpha) = (1 - alpha) theta_a + alpha theta_b between two seeds' trained models.
  BatchNorm statistics are recomputed on the data sample at every alpha (a train-mode pass;
  the same function as the mode-connectivity curve evaluation, after Garipov et al. 2018's
  ``update_bn``): the running statistics of the two endpoints belong to their own weights,
  and averaging them describes neither network. This costs one extra forward pass over the
  sample per alpha. ``recompute_batchnorm=False`` interpolates the buffers instead.
- 2D (Li et al. 2018, "Visualizing the Loss Landscape of Neural Nets"): the training loss on
  the plane theta + a d1 + b d2 spanned by two random Gaussian directions with filter
  normalization, biases and BatchNorm parameters excluded (their default ``ignore biasbn``),
  BatchNorm in eval mode with the model's running statistics (their default).

All losses are on one fixed sample of training points with the cell's (possibly noisy) labels.
"""

from __future__ import annotations

import argparse
import copy
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import xarray as xr
from torch import nn
from torch.func import functional_call

from lltax import checkpoint
from lltax.config import canonical_json
from lltax.device import resolve_device
from lltax.evaluation import evaluate_model
from lltax.io import atomic_path
from lltax.metrics.bezier import recompute_batchnorm_statistics
from lltax.checkpoint import check_same_cell, is_diverged
from lltax.config import parse_settings

__all__ = [
    "training_sample",
    "interpolate_1d",
    "filter_normalized_direction",
    "random_directions",
    "surface_2d",
    "landscape_dataset",
    "plot_landscape",
    "add_cli",
]

logger = logging.getLogger(__name__)

# Li et al.'s guard against an all-zero random filter (net_plotter.normalize_direction).
_NORM_EPSILON = 1e-10


def training_sample(
    inputs: torch.Tensor, targets: torch.Tensor, num_samples: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed random subset of ``num_samples`` points (all of them if there are fewer)."""
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(inputs), generator=generator)[:num_samples].to(inputs.device)
    return inputs[order], targets[order]


# ---------------------------------------------------------------------------------------------
# 1D linear interpolation


def _interpolated_state(state_a: Mapping[str, torch.Tensor], state_b: Mapping[str, torch.Tensor], alpha: float) -> dict:
    if state_a.keys() != state_b.keys():
        raise ValueError("models to interpolate have different state dict keys; both must be the same architecture")
    state = {}
    for name, tensor_a in state_a.items():
        if tensor_a.is_floating_point():
            # (1 - alpha) a + alpha b, not a + alpha (b - a): exact at both ends.
            state[name] = (1.0 - alpha) * tensor_a + alpha * state_b[name]
        else:
            state[name] = tensor_a  # BatchNorm's num_batches_tracked: a counter, not a coordinate
    return state


def interpolate_1d(
    model_a: nn.Module,
    model_b: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    alphas: Sequence[float],
    recompute_batchnorm: bool = True,
    batch_size: int = 1000,
) -> dict[str, np.ndarray]:
    """Loss and accuracy along theta(alpha) = (1 - alpha) theta_a + alpha theta_b.

    Parameters
    ----------
    model_a, model_b : nn.Module
        Two models of the same architecture; alpha = 0 is ``model_a``, 1 is ``model_b``.
    inputs, targets : torch.Tensor
        The data sample (class-index targets), on the models' device.
    alphas : sequence of float
        Interpolation coefficients; values outside [0, 1] extrapolate.
    recompute_batchnorm : bool
        True: recompute BatchNorm running statistics on ``inputs`` at every alpha (a
        train-mode pass in batches of ``batch_size``; with one batch they are the sample's
        mean and unbiased variance). False: interpolate the buffers too.
    batch_size : int
        Samples per forward pass.

    Returns
    -------
    dict
        ``alpha``, ``loss`` (mean cross-entropy, eval mode) and ``accuracy`` (percent),
        float64 arrays of len(alphas). The models are not modified.
    """
    state_a, state_b = model_a.state_dict(), model_b.state_dict()
    # One working copy for the whole line; each alpha loads its weights into it.
    working = copy.deepcopy(model_a)
    losses, accuracies = [], []
    for alpha in alphas:
        working.load_state_dict(_interpolated_state(state_a, state_b, float(alpha)))
        if recompute_batchnorm:
            recompute_batchnorm_statistics(working, inputs, batch_size)  # no-op without BatchNorm
        loss, accuracy = evaluate_model(working, inputs, targets, batch_size)
        losses.append(loss)
        accuracies.append(accuracy)
    return {
        "alpha": np.asarray(alphas, dtype=np.float64),
        "loss": np.asarray(losses, dtype=np.float64),
        "accuracy": np.asarray(accuracies, dtype=np.float64),
    }


# ---------------------------------------------------------------------------------------------
# 2D filter-normalized surface


def filter_normalized_direction(params: Mapping[str, torch.Tensor], generator: torch.Generator) -> dict[str, torch.Tensor]:
    """A random Gaussian direction, each filter rescaled to the norm of the parameters' filter.

    A filter is a slice along dim 0 of a tensor with more than one dimension (a conv output
    channel, a row of a linear weight). Tensors with one dimension or none (biases, BatchNorm
    weights) get zero direction: Li et al.'s default ``ignore biasbn``.

    Parameters
    ----------
    params : mapping of name to tensor
        The parameters, e.g. ``dict(model.named_parameters())``.
    generator : torch.Generator
        A CPU generator; the noise is drawn on the CPU in the parameters' dtype and then
        moved, so the direction does not depend on the device.

    Returns
    -------
    dict of name to tensor, shaped, typed and placed like ``params``.
    """
    direction = {}
    for name, theta in params.items():
        theta = theta.detach()
        if theta.dim() <= 1:
            direction[name] = torch.zeros_like(theta)
            continue
        noise = torch.randn(theta.shape, generator=generator, dtype=theta.dtype).to(theta.device)
        scale = theta.flatten(1).norm(dim=1) / (noise.flatten(1).norm(dim=1) + _NORM_EPSILON)
        direction[name] = noise * scale.view(-1, *([1] * (theta.dim() - 1)))
    return direction


def random_directions(model: nn.Module, seed: int) -> tuple[dict, dict]:
    """Two filter-normalized directions for ``model``, drawn in turn from one generator seeded with ``seed``."""
    params = dict(model.named_parameters())
    generator = torch.Generator().manual_seed(seed)
    return filter_normalized_direction(params, generator), filter_normalized_direction(params, generator)


@torch.no_grad()
def _mean_loss(forward: Callable, inputs: torch.Tensor, targets: torch.Tensor, loss_function: Callable, batch_size: int) -> float:
    total = 0.0
    for start in range(0, len(inputs), batch_size):
        batch_targets = targets[start : start + batch_size]
        total += loss_function(forward(inputs[start : start + batch_size]), batch_targets).item() * len(batch_targets)
    return total / len(inputs)


def surface_2d(
    model: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    coords: tuple[Sequence[float], Sequence[float]],
    directions: tuple[Mapping[str, torch.Tensor], Mapping[str, torch.Tensor]],
    loss_function: Callable = F.cross_entropy,
    batch_size: int = 1000,
) -> np.ndarray:
    """Loss at theta + a d1 + b d2 over a grid, model in eval mode (BatchNorm running statistics).

    Parameters
    ----------
    model : nn.Module
        The centre theta; not modified (points are evaluated with ``functional_call``).
    inputs, targets : torch.Tensor
        The data sample, on the model's device.
    coords : (sequence of float, sequence of float)
        Coefficients ``a`` (along d1) and ``b`` (along d2).
    directions : (mapping, mapping)
        d1 and d2, name -> tensor for every parameter (see ``random_directions``).
    loss_function : callable
        ``loss_function(outputs, targets)`` -> batch-mean loss; cross-entropy by default.
    batch_size : int
        Samples per forward pass.

    Returns
    -------
    np.ndarray
        float64 array of shape (len(coords[0]), len(coords[1])); entry [i, j] is the mean loss
        at a = coords[0][i], b = coords[1][j].
    """
    a_values, b_values = coords
    params = {name: p.detach() for name, p in model.named_parameters()}
    first, second = directions
    missing = sorted(set(params) - set(first) | set(params) - set(second))
    if missing:
        raise ValueError(f"directions lack parameters {missing}; build them from this model with random_directions(model, seed)")
    first = {name: first[name].to(theta) for name, theta in params.items()}
    second = {name: second[name].to(theta) for name, theta in params.items()}
    losses = np.empty((len(a_values), len(b_values)))
    was_training = model.training
    model.eval()
    try:
        for i, a in enumerate(a_values):
            for j, b in enumerate(b_values):
                point = {name: theta + a * first[name] + b * second[name] for name, theta in params.items()}
                losses[i, j] = _mean_loss(lambda x: functional_call(model, point, (x,)), inputs, targets, loss_function, batch_size)
            logger.info("surface row %d/%d (a = %.3g) done", i + 1, len(a_values), a)
    finally:
        model.train(was_training)
    return losses


# ---------------------------------------------------------------------------------------------
# Dataset and figure


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
            "interp_acc": ("alpha", interpolation["accuracy"], {"units": "percent", "long_name": "training accuracy along the linear interpolation"}),
            "endpoint_loss": ("seed", np.asarray(endpoints["loss"], dtype=np.float64), {"units": "nats", "long_name": "training loss of the end models as trained"}),
            "endpoint_acc": ("seed", np.asarray(endpoints["accuracy"], dtype=np.float64), {"units": "percent", "long_name": "training accuracy of the end models as trained"}),
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


def _contour_levels(values: np.ndarray) -> np.ndarray | None:
    """Log-spaced contour levels: 1-2-5 per decade when that gives enough of them."""
    finite = values[np.isfinite(values) & (values > 0)]
    if finite.size == 0 or finite.min() == finite.max():
        return None
    low, high = finite.min(), finite.max()
    decades = range(int(np.floor(np.log10(low))), int(np.ceil(np.log10(high))) + 1)
    nice = np.array([m * 10.0**k for k in decades for m in (1, 2, 5)])
    # Bracket the data: one level at or below the minimum, one at or above the maximum.
    levels = nice[(nice >= nice[nice <= low].max()) & (nice <= nice[nice >= high].min())]
    return levels if len(levels) >= 6 else np.geomspace(low, high, 12)


def plot_landscape(dataset: xr.Dataset, path: str | Path, file_format: str | None = None, dpi: int = 150) -> None:
    """1D interpolation (loss and accuracy) and the 2D surface's contour plot side by side."""
    from matplotlib.colors import LogNorm
    from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend

    seed_a, seed_b = (int(s) for s in np.atleast_1d(dataset.attrs.get("seeds", [0, 1]))[:2])
    figure = Figure(figsize=(11, 5), layout="constrained")
    line_axes, surface_axes = figure.subplots(1, 2)

    alpha, loss, accuracy = dataset["alpha"].values, dataset["interp_loss"].values, dataset["interp_acc"].values
    if np.isfinite(loss).any():
        line_axes.plot(alpha, loss, "o-", color="C0", markersize=3, label="loss")
        line_axes.plot([0.0, 1.0], dataset["endpoint_loss"].values, "o", color="C0", markerfacecolor="none", markersize=8,
                       label="end models as trained (own BatchNorm statistics)")
        if (loss[np.isfinite(loss)] > 0).all():
            line_axes.set_yscale("log")
        accuracy_axes = line_axes.twinx()
        accuracy_axes.plot(alpha, accuracy, "s--", color="C1", markersize=3, label="accuracy")
        accuracy_axes.set_ylabel("training accuracy (%)", color="C1")
        handles = line_axes.get_legend_handles_labels()[0] + accuracy_axes.get_legend_handles_labels()[0]
        line_axes.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=3, fontsize=7, frameon=False)
        for position, seed in ((0.0, seed_a), (1.0, seed_b)):
            line_axes.axvline(position, color="gray", linewidth=0.8, linestyle=":")
            line_axes.annotate(f"seed {seed}", (position, 1.0), xycoords=("data", "axes fraction"), ha="center", va="bottom", fontsize=8)
    else:
        line_axes.text(0.5, 0.5, "no finite values (diverged model)", ha="center", transform=line_axes.transAxes)
    line_axes.set_xlabel(r"$\alpha$:  $(1-\alpha)\,\theta_{%d} + \alpha\,\theta_{%d}$" % (seed_a, seed_b))
    line_axes.set_ylabel("training loss", color="C0")
    line_axes.set_title("linear interpolation", pad=14)

    surface = np.ma.masked_invalid(dataset["surface_loss"].values)
    levels = _contour_levels(surface.filled(np.nan))
    if levels is not None:
        # Log-spaced levels (Li et al. use fixed linear ones, 0.1..10): the basin and its walls
        # span orders of magnitude. Transposed so that a runs along x and b along y.
        grid_a, grid_b = dataset["a"].values, dataset["b"].values
        filled = surface_axes.contourf(grid_a, grid_b, surface.T, levels=levels, norm=LogNorm(), cmap="viridis")
        surface_axes.contour(grid_a, grid_b, surface.T, levels=levels, colors="white", linewidths=0.4)
        figure.colorbar(filled, ax=surface_axes, label="training loss", format="%.3g")
        surface_axes.plot([0.0], [0.0], "r*", markersize=10)
        surface_axes.annotate(f"seed {seed_a}", (0.0, 0.0), textcoords="offset points", xytext=(6, 6), color="red", fontsize=8)
    else:
        surface_axes.text(0.5, 0.5, "no finite values (diverged model)", ha="center", transform=surface_axes.transAxes)
    surface_axes.set_xlabel(r"$a$ (filter-normalized direction $d_1$)")
    surface_axes.set_ylabel(r"$b$ (filter-normalized direction $d_2$)")
    surface_axes.set_title("loss surface around seed %d" % seed_a, pad=14)
    surface_axes.set_aspect("equal")
    figure.savefig(path, format=file_format, dpi=dpi)


# ---------------------------------------------------------------------------------------------
# Command line


def _parse_settings(text: str) -> dict:
    settings = parse_settings(text, "landscape")  # schema check, defaults filled
    low, high = settings["range_1d"]
    if not low < high:
        raise ValueError(f"--settings key 'landscape.range_1d' must be [low, high] with low < high, got {settings['range_1d']!r}")
    return settings


def _grid(low: float, high: float, points: int) -> np.ndarray:
    # Rounded so that 0 and 1 come out exact and coordinates have one spelling; + 0.0 drops -0.0.
    return np.linspace(low, high, points).round(12) + 0.0


def run_landscape(args: argparse.Namespace) -> int:
    settings = _parse_settings(args.settings)
    device = resolve_device(args.device)
    path_a, path_b = args.checkpoints
    model_a, meta_a = checkpoint.load_model(path_a, device)
    model_b, meta_b = checkpoint.load_model(path_b, device)
    check_same_cell([meta_a, meta_b], args.checkpoints)
    alphas = _grid(settings["range_1d"][0], settings["range_1d"][1], settings["points_1d"])
    grid = _grid(-settings["range_2d"], settings["range_2d"], settings["points_2d"])
    coords = (grid, grid)
    diverged_a, diverged_b = is_diverged(model_a, meta_a), is_diverged(model_b, meta_b)

    data = checkpoint.load_cell_data(meta_a, device, args.data_dir)
    inputs, targets = training_sample(data.x_train, data.y_train, settings["num_samples"], settings["seed"])
    logger.info("landscape of seeds %s and %s on %d training samples, device %s", meta_a["seed"], meta_b["seed"], len(inputs), device)

    nan = float("nan")
    endpoints = {"seed": [meta_a["seed"], meta_b["seed"]], "loss": [], "accuracy": []}
    for model, diverged in ((model_a, diverged_a), (model_b, diverged_b)):
        loss, accuracy = (nan, nan) if diverged else evaluate_model(model, inputs, targets)
        endpoints["loss"].append(loss)
        endpoints["accuracy"].append(accuracy)
    if diverged_a or diverged_b:
        logger.warning("a model diverged (seed %s: %s, seed %s: %s); interpolation is NaN", meta_a["seed"], diverged_a, meta_b["seed"], diverged_b)
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
        with atomic_path(args.figure) as tmp:
            plot_landscape(dataset, tmp, file_format=Path(args.figure).suffix.lstrip(".") or "png")
    return 0


def add_cli(subparsers) -> None:
    parser = subparsers.add_parser(
        "landscape",
        help="1D linear interpolation between two seeds and 2D filter-normalized loss surface (Li et al. 2018)",
    )
    parser.add_argument("--checkpoints", nargs=2, required=True, metavar=("A", "B"), help="two seeds' checkpoints of one cell; the surface is around A")
    parser.add_argument("--settings", required=True, help="the config's landscape section as one JSON object")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--out", required=True, help="output netCDF file, e.g. <cell>/landscape.nc")
    parser.add_argument("--figure", help="optional figure file, e.g. <cell>/landscape.png")
    parser.add_argument("--data-dir", help="dataset folder (default: the one recorded in the checkpoint)")
    parser.set_defaults(func=run_landscape)

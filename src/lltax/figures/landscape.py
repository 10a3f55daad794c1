"""Landscape figures: one cell's pictures (landscape.png) and cells side by side (atlas.png).

Li et al. 2018's conventions: 1D plots with loss on the left axis and accuracy on the right,
training solid and test dashed (their Figure 2); filled contours of the training loss with
labelled levels; the 3D surface. Log-spaced levels by default: a basin and its walls span
orders of magnitude (``landscape.levels`` and ``landscape.color_limits`` set them).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np
import xarray as xr
from matplotlib.colors import LogNorm, Normalize
from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend

from lltax.contract import AXES
from lltax.figures.grid import axis_label, set_title_lines

__all__ = ["landscape_figure", "atlas_figure", "_contour_levels"]


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


def _settings(dataset: xr.Dataset) -> dict:
    return json.loads(dataset.attrs.get("settings", "{}"))


def _levels(values: np.ndarray, settings: dict, limits: Sequence[float] | None = None) -> np.ndarray | None:
    if settings.get("levels"):
        return np.asarray(sorted(settings["levels"]), dtype=float)
    limits = limits or settings.get("color_limits")
    if limits:
        return np.geomspace(limits[0], limits[1], 12)
    return _contour_levels(values)


def _no_data(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])


def _aspect(ax, a: np.ndarray, b: np.ndarray) -> None:
    """Equal units on both axes where the plane is square; with range_b != range_2d the panel
    keeps its shape (the ticks tell the units)."""
    if np.isclose(np.ptp(a), np.ptp(b)):
        ax.set_aspect("equal")


def model_labels(dataset: xr.Dataset) -> list[str]:
    """Names of the file's models: "s0", "s1", ... by seed, or a comparison's "A: ...", "B: ..."."""
    if "model_labels" in dataset.attrs:
        return list(json.loads(dataset.attrs["model_labels"]))
    return [f"s{int(seed)}" for seed in np.atleast_1d(dataset.attrs.get("seeds", [0, 1]))]


def draw_line(ax, dataset: xr.Dataset, prefix: str, coordinate: str, label: str = "") -> bool:
    """Loss (left, log when positive) and accuracy (right) along a 1D coordinate: training
    solid, test dashed. False when there is nothing finite to draw."""
    x = dataset[coordinate].values
    loss = dataset[f"{prefix}_train_loss"].values
    if not np.isfinite(loss).any():
        return False
    accuracy_axes = ax.twinx()
    for split, style in (("train", "-"), ("test", "--")):
        if f"{prefix}_{split}_loss" in dataset:
            ax.plot(x, dataset[f"{prefix}_{split}_loss"].values, style, color="C0", linewidth=1.2, label=f"{label}{split} loss")
            accuracy_axes.plot(
                x, dataset[f"{prefix}_{split}_acc"].values, style, color="C1", linewidth=1.2, label=f"{label}{split} accuracy"
            )
    if (loss[np.isfinite(loss)] > 0).all():
        ax.set_yscale("log")
    ax.set_ylabel("loss (nats)", color="C0")
    accuracy_axes.set_ylabel("accuracy (%)", color="C1")
    accuracy_axes.set_ylim(0, 100)
    handles = ax.get_legend_handles_labels()[0] + accuracy_axes.get_legend_handles_labels()[0]
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=2, fontsize=6, frameon=False)
    return True


def _mark_models(ax, dataset: xr.Dataset, color: str = "red") -> None:
    """The models of a plane through them as stars with their names (else s0 at the origin)."""
    if "model_coordinates" in dataset:
        for label, (x, y) in zip(model_labels(dataset), dataset["model_coordinates"].values):
            if np.isfinite(x) and np.isfinite(y):
                ax.plot([x], [y], "*", color=color, markersize=9)
                ax.annotate(label.split(":")[0], (x, y), textcoords="offset points", xytext=(5, 5), color=color, fontsize=7)
    else:
        ax.plot([0.0], [0.0], "*", color=color, markersize=9)


def draw_contour(ax, dataset: xr.Dataset, figure: Figure, levels: np.ndarray | None, *, colorbar: bool = True):
    """Filled contours of the training-loss surface with labelled levels; the models of a plane
    through seeds marked, the fitted curve on its plane and the training path on a PCA plane. Returns the contour set (None
    when nothing is finite)."""
    surface = np.ma.masked_invalid(dataset["surface_train_loss"].values)
    if levels is None:
        _no_data(ax, "no finite values (diverged model)")
        return None
    a, b = dataset["a"].values, dataset["b"].values
    filled = ax.contourf(a, b, surface.T, levels=levels, norm=LogNorm(levels[0], levels[-1]), cmap="viridis", extend="both")
    lines = ax.contour(a, b, surface.T, levels=levels, colors="white", linewidths=0.5)
    ax.clabel(lines, lines.levels[::2], fmt="%.3g", fontsize=6)
    if colorbar:
        figure.colorbar(filled, ax=ax, label="training loss (nats)", format="%.3g")
    _mark_models(ax, dataset)
    if "curve_coordinates" in dataset:  # Garipov et al.'s Figure 1: the fitted curve on its plane
        curve = dataset["curve_coordinates"].values
        ax.plot(curve[:, 0], curve[:, 1], "--", color="red", linewidth=1.2)
    if "path_coordinates" in dataset:  # Li et al.'s Figure 9: the training path on its PCA plane
        path = dataset["path_coordinates"].values
        ax.plot(path[:, 0], path[:, 1], "o-", color="red", markersize=2.5, linewidth=1.0)
        ax.annotate("init", tuple(path[0]), textcoords="offset points", xytext=(4, 4), color="red", fontsize=7)
    _aspect(ax, a, b)
    _plane_labels(ax, dataset)
    return filled


def cell_text(cell: dict, axes: Sequence[str] | None = None) -> str:
    """'width k = 16, batch size = 64, ...': grid axes by their names, as the phase maps say them."""
    names = [axis for axis in AXES if axis in cell] + [axis for axis in cell if axis not in AXES]
    return ", ".join(
        f"{axis_label(axis)} = {cell[axis]:g}" if isinstance(cell[axis], (int, float)) else f"{axis_label(axis)} = {cell[axis]}"
        for axis in names
        if axes is None or axis in axes
    )


def landscape_title(dataset: xr.Dataset) -> list[str]:
    """The figure's title lines: the model and its cell by the axes' names and values; for a
    comparison, what tells A and B apart, then the axes they share."""
    model = dataset.attrs.get("model", "")
    cells = json.loads(dataset.attrs.get("cell", "{}"))
    if "model_labels" in dataset.attrs:  # a comparison: two cells
        differing = [axis for axis in cells[0] if cells[0][axis] != cells[1].get(axis)]
        shared = [axis for axis in cells[0] if axis not in differing]
        parts = [f"{name} ({cell_text(cell, differing)})" for name, cell in zip("AB", cells)]
        return [f"{model}: {' vs '.join(parts)}", f"both: {cell_text(cells[0], shared)}"]
    seeds = ", ".join(model_labels(dataset))
    return [f"{model}, seeds {seeds}", cell_text(cells)]


def _plane_labels(ax, dataset: xr.Dataset) -> None:
    """Axis names of a panel on the plane (d1, d2): PCA's shares of the path's variance, or the directions."""
    if "pca_explained_variance" in dataset:
        shares = 100 * dataset["pca_explained_variance"].values
        ax.set_xlabel(f"$a$ (1st PCA direction: {shares[0]:.1f} %)")
        ax.set_ylabel(f"$b$ (2nd PCA direction: {shares[1]:.1f} %)")
    else:
        ax.set_xlabel(r"$a$ (direction $d_1$)")
        ax.set_ylabel(r"$b$ (direction $d_2$)")


def _panel_layout(figure: Figure, spectrum: bool, ratio: bool) -> dict:
    """The panels that have something to show, on two rows: interpolation, 1D along d1,
    contours (and the spectrum, or else the ratio map) above; the heat map, the 3D surface
    (spanning what is left) and the ratio map below. A panel not computed is left out."""
    top = ["interpolation", "ray", "contour"] + (["spectrum"] if spectrum else ["ratio"] if ratio else [])
    bottom_ratio = ratio and spectrum
    columns = max(len(top), 4 if bottom_ratio else 3)
    figure.set_size_inches(4.25 * columns, 8)
    grid = figure.add_gridspec(2, columns)
    axes = {name: figure.add_subplot(grid[0, column]) for column, name in enumerate(top)}
    axes["heat"] = figure.add_subplot(grid[1, 0])
    axes["surface_3d"] = figure.add_subplot(grid[1, 1 : columns - bottom_ratio], projection="3d")
    if bottom_ratio:
        axes["ratio"] = figure.add_subplot(grid[1, columns - 1])
    return axes


def landscape_figure(dataset: xr.Dataset, settings: dict | None = None) -> Figure:
    """One cell (or a comparison of two): interpolation, 1D along d1, contours, heat map, 3D
    surface, and where computed the spectrum and the ratio map. ``settings`` (the section
    'landscape') gives the contour levels and colour limits; without it, the file's own."""
    settings = _settings(dataset) if settings is None else settings
    labels = model_labels(dataset)
    first, second = (label.split(":")[0] for label in labels[:2])
    figure = Figure(figsize=(17, 8), layout="constrained")
    axes = _panel_layout(figure, "spectral_density" in dataset, "eigenvalue_ratio" in dataset)
    interpolation, ray, contour, heat, surface_3d = (axes[name] for name in ("interpolation", "ray", "contour", "heat", "surface_3d"))

    if not draw_line(interpolation, dataset, "interp", "alpha"):
        _no_data(interpolation, "no finite values (diverged model)")
    interpolation.set_xlabel(r"$\alpha$:  $(1-\alpha)\,\theta_{%s} + \alpha\,\theta_{%s}$" % (first, second))
    interpolation.set_title(f"linear interpolation (BatchNorm: {dataset.attrs.get('batchnorm_1d', 'recompute')})", fontsize=9)
    if not draw_line(ray, dataset, "ray", "r"):
        _no_data(ray, "no finite values (diverged model)")
    ray.set_xlabel(r"$r$ along $d_1$ around $\theta_{%s}$" % first)
    ray.set_title(f"1D along d1 ({dataset.attrs.get('directions', 'random')} directions)", fontsize=9)

    values = dataset["surface_train_loss"].values
    levels = _levels(values, settings)
    draw_contour(contour, dataset, figure, levels)
    contour.set_title(f"training loss around {first}", fontsize=9)

    shown = "surface_test_loss" if "surface_test_loss" in dataset else "surface_train_acc"
    heat_values = np.ma.masked_invalid(dataset[shown].values)
    if heat_values.count():
        positive = shown.endswith("loss") and (heat_values.compressed() > 0).all()
        norm = LogNorm() if positive else Normalize()
        mesh = heat.pcolormesh(dataset["a"].values, dataset["b"].values, heat_values.T, cmap="magma", norm=norm, shading="nearest")
        figure.colorbar(mesh, ax=heat, label=dataset[shown].attrs.get("long_name", shown).split(" on ")[0], format="%.3g")
        _mark_models(heat, dataset, color="cyan")
        _aspect(heat, dataset["a"].values, dataset["b"].values)
        _plane_labels(heat, dataset)
    else:
        _no_data(heat, "no finite values")
    heat.set_title(f"heat map: {shown.replace('surface_', '').replace('_', ' ')}", fontsize=9)

    finite = np.isfinite(values)
    if finite.any():
        a, b = np.meshgrid(dataset["a"].values, dataset["b"].values, indexing="ij")
        height = np.log10(np.where(finite & (values > 0), values, np.nan)) if (values[finite] > 0).all() else values
        surface_3d.plot_surface(a, b, np.ma.masked_invalid(height), cmap="viridis", linewidth=0, antialiased=True)
        surface_3d.set_zlabel("log10 training loss" if height is not values else "training loss", fontsize=8)
    surface_3d.set_xlabel("a")
    surface_3d.set_ylabel("b")
    surface_3d.set_title("3D surface", fontsize=9)

    if "spectrum" in axes:
        spectrum = axes["spectrum"]
        spectrum.semilogy(dataset["eigenvalue"].values, np.maximum(dataset["spectral_density"].values, 1e-12), color="C2")
        spectrum.set_ylim(bottom=max(1e-8, float(np.nanmax(dataset["spectral_density"].values)) * 1e-6))
        spectrum.set_xlabel("Hessian eigenvalue")
        spectrum.set_ylabel("density")
        spectrum.set_title(f"Hessian eigenvalue density at {first} (SLQ)", fontsize=9)

    if "ratio" in axes:
        ratio = axes["ratio"]
        ratios = dataset["eigenvalue_ratio"].values
        signed = dataset["eigenvalue_ratio"].attrs.get("definition") == "signed"
        if signed:
            limit = max(float(np.nanmax(np.abs(ratios))), 1e-6) if np.isfinite(ratios).any() else 1.0
            options, label = {"cmap": "RdBu", "vmin": -limit, "vmax": limit}, r"$\lambda_{\min} / \lambda_{\max}$"
        else:  # Li et al.'s Figure 7 (plot_2D.plot_2d_eig_ratio): |ratio| in viridis over [0, 0.5]
            options, label = {"cmap": "viridis", "vmin": 0.0, "vmax": 0.5}, r"$|\lambda_{\min} / \lambda_{\max}|$"
        mesh = ratio.pcolormesh(dataset["ra"].values, dataset["rb"].values, ratios.T, shading="nearest", **options)
        figure.colorbar(mesh, ax=ratio, label=label)
        _aspect(ratio, dataset["ra"].values, dataset["rb"].values)
        _plane_labels(ratio, dataset)
        ratio.set_title(
            "local convexity: red < 0 (non-convex), blue > 0" if signed else "local convexity (Li et al.): dark = convex", fontsize=9
        )
    set_title_lines(figure, landscape_title(dataset), fontsize=10)
    return figure


def atlas_figure(
    datasets: Sequence[xr.Dataset],
    titles: Sequence[str],
    color_limits: Sequence[float] | None = None,
    levels: Sequence[float] | None = None,
) -> Figure:
    """Cells side by side on one scale: contours of their training-loss surfaces with shared
    levels (the same filter-normalized range when their settings agree), and below them the
    1D plots along d1 on shared axes. ``levels`` and ``color_limits`` as landscape.levels and
    landscape.color_limits (levels: None = those the first file records, if any)."""
    if not datasets:
        figure = Figure(figsize=(6, 2.5), layout="constrained")
        _no_data(figure.subplots(), "no landscape pictures in this run (landscape.enabled or landscape.cells)")
        return figure
    every = np.concatenate([d["surface_train_loss"].values.ravel() for d in datasets])
    levels = _levels(every, _settings(datasets[0]) if levels is None else {"levels": levels}, color_limits)
    figure = Figure(figsize=(3.4 * len(datasets) + 1.0, 6.6), layout="constrained")
    axes = figure.subplots(2, len(datasets), squeeze=False)
    filled = None
    for column, (dataset, title) in enumerate(zip(datasets, titles)):
        filled = draw_contour(axes[0, column], dataset, figure, levels, colorbar=False) or filled
        axes[0, column].set_title(title, fontsize=9)
        if not draw_line(axes[1, column], dataset, "ray", "r"):
            _no_data(axes[1, column], "no finite values")
        axes[1, column].set_xlabel(r"$r$ along $d_1$")
    if filled is not None:
        figure.colorbar(filled, ax=axes[0, :], label="training loss (nats)", format="%.3g", shrink=0.9)
    lows = [ax.get_ylim()[0] for ax in axes[1] if ax.lines]
    highs = [ax.get_ylim()[1] for ax in axes[1] if ax.lines]
    for ax in axes[1]:
        if ax.lines and lows:
            ax.set_ylim(min(lows), max(highs))
    figure.suptitle("Landscapes side by side on one scale (shared contour levels and loss axis)", fontsize=10)
    return figure

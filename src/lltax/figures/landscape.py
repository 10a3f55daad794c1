"""The per-cell landscape picture: 1D interpolation and the 2D surface's contours (Li et al. 2018)."""

from __future__ import annotations

import numpy as np
import xarray as xr
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend


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


def landscape_figure(dataset: xr.Dataset) -> Figure:
    """1D interpolation (loss and accuracy) and the 2D surface's contour plot side by side."""
    seed_a, seed_b = (int(s) for s in np.atleast_1d(dataset.attrs.get("seeds", [0, 1]))[:2])
    figure = Figure(figsize=(11, 5), layout="constrained")
    line_axes, surface_axes = figure.subplots(1, 2)

    alpha, loss, accuracy = dataset["alpha"].values, dataset["interp_loss"].values, dataset["interp_acc"].values
    if np.isfinite(loss).any():
        line_axes.plot(alpha, loss, "o-", color="C0", markersize=3, label="loss")
        line_axes.plot(
            [0.0, 1.0],
            dataset["endpoint_loss"].values,
            "o",
            color="C0",
            markerfacecolor="none",
            markersize=8,
            label="end models as trained (own BatchNorm statistics)",
        )
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
    return figure

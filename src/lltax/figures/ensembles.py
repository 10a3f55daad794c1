"""Test accuracy of one model, its fast geometric ensemble and the cell's independent seeds
ensembled (fge.json, Garipov et al. 2018), over plots.x, one panel per value of the other axes."""

from __future__ import annotations

import numpy as np
import xarray as xr
from matplotlib.figure import Figure

from lltax.figures.grid import (
    axis_label,
    axis_values,
    fixed_axes_text,
    new_figure,
    selection_text,
    selections,
    set_title_lines,
    tick_labels,
    varying_axes,
)

SERIES = (
    ("single_test_acc", "one model", "tab:gray", "o"),
    ("fge_test_acc", "FGE ensemble", "tab:blue", "s"),
    ("seed_ensemble_test_acc", "independent seeds", "tab:orange", "^"),
    ("curve_ensemble_test_acc", "along the fitted curve", "tab:green", "D"),
)


def ensembles_figure(dataset: xr.Dataset, phases: xr.Dataset, *, x: str = "width", y: str = "batch_size") -> Figure:
    """One panel per combination of the axes other than ``x``; budgets (training epochs) in the legend."""
    panels = selections(phases, varying_axes(phases, (x,)))
    x_values = axis_values(phases, x)
    figure = new_figure(max(6.5, 3.6 * len(panels) + 0.5), 3.6)
    axes = figure.subplots(1, len(panels), squeeze=False, sharey=True)[0]
    budgets = {
        name: float(np.nanmean(dataset[name].values)) if name in dataset and np.isfinite(dataset[name].values).any() else np.nan
        for name in ("fge_epochs", "seed_ensemble_epochs", "curve_ensemble_epochs")
    }
    for ax, selection in zip(axes, panels):
        for name, label, color, marker in SERIES:
            if name not in dataset or not np.isfinite(dataset[name].values).any():  # no curves: no curve ensemble
                continue
            selected = dataset[name].sel(selection)
            values = selected.squeeze([a for a in selected.dims if a != x], drop=True).sel({x: x_values}).values
            epochs = {
                "fge_test_acc": budgets["fge_epochs"],
                "seed_ensemble_test_acc": budgets["seed_ensemble_epochs"],
                "curve_ensemble_test_acc": budgets["curve_ensemble_epochs"],
            }.get(name)
            text = f"{label} ({epochs:g} epochs)" if epochs is not None and np.isfinite(epochs) else label
            ax.plot(np.arange(len(x_values)), values, marker=marker, color=color, label=text, linewidth=1)
        ax.set_xticks(np.arange(len(x_values)), tick_labels(x_values))
        ax.set_xlabel(axis_label(x))
        ax.set_title(selection_text(selection), fontsize=9)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("test accuracy (%)")
    if axes[0].get_lines():  # an all-NaN grid (every run diverged) draws no line
        axes[0].legend(fontsize=7)
    set_title_lines(
        figure, ["Test accuracy: one model, its fast geometric ensemble, the independent seeds ensembled", fixed_axes_text(phases)]
    )
    return figure

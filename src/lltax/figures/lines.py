"""1D figures: one metric against the temperature axis, and the loss along mode-connecting curves.

``lines_figure`` is the view of Yang et al. 2021, Figure 7e (Hessian trace against batch size,
one line per label-noise level). ``curves_figure`` draws the training loss and error along the
fitted Bezier curves against t (Garipov et al. 2018, Figure 2), one line per cell, grouped by the
cell's phase: barriers (phases I, III), flat profiles (IV) and dips (II) are what the mode
connectivity mc summarises.
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from matplotlib import colormaps
from matplotlib.cm import ScalarMappable
from matplotlib.colors import BoundaryNorm, ListedColormap
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, NullFormatter

from lltax.figures.grid import (
    PHASES,
    axis_label,
    axis_values,
    cell_mean,
    check_axes,
    fixed_axes_text,
    grid_axes,
    new_figure,
    phase_strings,
    power_base,
    selection_text,
    selections,
    set_title_lines,
    tick_labels,
    units,
    varying_axes,
    with_units,
)

# Metrics that span decades: drawn on a log axis when all their values are positive.
LOG_METRICS = ("train_loss", "test_loss", "hessian_top_eigenvalue", "hessian_trace", "l2_distance")
# Grid axes whose values are usually geometric (doubling batch sizes, widths, learning rates).
LOG_AXES = ("width", "batch_size", "learning_rate", "weight_decay")


def resolve_line_group(phases: xr.Dataset, x: str, y: str, line_group: str) -> str:
    """plots.line_group: 'auto' = the first grid axis other than x, y with more than one value, else x."""
    if line_group == "auto":
        others = varying_axes(phases, (x, y))
        return others[0] if others else x
    axes = grid_axes(phases)
    if line_group not in axes or line_group == y:
        raise ValueError(
            f"plots.line_group = {line_group!r} must be 'auto' or a grid axis other than plots.y = {y!r}; choose one of {[a for a in axes if a != y]}"
        )
    return line_group


def _numeric_names(data: xr.Dataset) -> list[str]:
    return sorted(str(n) for n, v in data.data_vars.items() if np.issubdtype(v.dtype, np.number) and "t" not in v.dims)


def metric_mean_and_spread(dataset: xr.Dataset, phases: xr.Dataset, name: str) -> tuple[xr.DataArray, xr.DataArray]:
    """Cell mean and standard deviation (ddof=1) over seeds or seed pairs of a scalar metric.

    Taken from the per-seed dataset when it has ``name``, else from phases' ``<name>_mean`` and
    ``<name>_std`` (or a cell-level variable of phases, with no spread).
    """
    if name in dataset and np.issubdtype(dataset[name].dtype, np.number) and "t" not in dataset[name].dims:
        array = dataset[name].astype(float)
        over = [d for d in ("seed", "pair") if d in array.dims]
        return array.mean(over, skipna=True), array.std(over, ddof=1, skipna=True)
    if f"{name}_mean" in phases and "t" not in phases[f"{name}_mean"].dims:
        mean = phases[f"{name}_mean"]
        return mean, phases.get(f"{name}_std", xr.full_like(mean, np.nan))
    if name in phases and np.issubdtype(phases[name].dtype, np.number) and "t" not in phases[name].dims:
        return phases[name], xr.full_like(phases[name], np.nan, dtype=float)
    choices = sorted(set(_numeric_names(dataset)) | {n.removesuffix("_mean") for n in _numeric_names(phases) if n.endswith("_mean")})
    raise ValueError(f"plots.line_metric = {name!r} is not a scalar metric of the dataset; choose one of {choices}")


def _profile(array: xr.DataArray, selection: dict, axis: str) -> np.ndarray:
    """Values of ``array`` along ``axis`` (ascending) at ``selection``; size-1 axes dropped."""
    array = array.sel(selection)
    for dim in list(array.dims):
        if dim == axis:
            continue
        if array.sizes[dim] != 1:
            raise ValueError(f"{array.name}: dimension {dim!r} (size {array.sizes[dim]}) is neither plotted nor selected")
        array = array.isel({dim: 0})
    return array.sortby(axis).values.astype(float)


def _use_log_axis(axis: str, values: np.ndarray) -> bool:
    values = np.asarray(values, dtype=float)
    return bool(np.all(values > 0) and (axis in LOG_AXES or values.max() / values.min() >= 10))


def _setup_log_x(ax, values: np.ndarray) -> None:
    base = 2 if power_base(values) == 2 else 10
    ax.set_xscale("log", base=base)
    # Limits from the grid, not the data: with every value NaN the data give none a log axis can use.
    ax.set_xlim(values.min() / 1.15, values.max() * 1.15)
    if base == 2 or values.max() / values.min() < 100:
        # Few decades: label the grid values themselves (every other one when crowded).
        ax.set_xticks(values, tick_labels(values) if len(values) <= 12 else [f"{v:g}" if i % 2 == 0 else "" for i, v in enumerate(values)])
        ax.xaxis.set_minor_formatter(NullFormatter())
    else:
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))


def lines_figure(
    dataset: xr.Dataset,
    phases: xr.Dataset,
    *,
    x: str = "width",
    y: str = "batch_size",
    line_metric: str = "hessian_trace",
    line_group: str = "auto",
) -> Figure:
    """``line_metric`` against plots.y, one line per value of ``line_group``, band = ±1 std over seeds.

    Every other grid axis with more than one value gives one panel per value.
    """
    check_axes(dataset, phases, x, y)
    group = resolve_line_group(phases, x, y, line_group)
    mean, spread = metric_mean_and_spread(dataset, phases, line_metric)
    y_values, group_values = axis_values(phases, y), axis_values(phases, group)
    panels = selections(phases, varying_axes(phases, (y, group)))
    columns = min(4, len(panels))
    grid_rows = -(-len(panels) // columns)
    figure = new_figure(4.6 * columns + 2.4, 3.4 * grid_rows + 1.2)
    axes = figure.subplots(grid_rows, columns, squeeze=False, sharey=True).ravel()
    colors = colormaps["viridis"](np.linspace(0.0, 0.9, len(group_values)))
    finite = mean.values[np.isfinite(mean.values)]
    # A log axis needs positive data; with none at all (every cell diverged) it cannot draw ticks.
    log_y = line_metric in LOG_METRICS and finite.size > 0 and bool(np.all(finite > 0))
    unit = units(dataset, line_metric)
    title = str(dataset[line_metric].attrs.get("long_name", line_metric)) if line_metric in dataset else line_metric.replace("_", " ")

    for ax, selection in zip(axes, panels):
        for color, label, value in zip(colors, tick_labels(group_values), group_values):
            where = {**selection, group: value}
            center, width = _profile(mean, where, y), _profile(spread, where, y)
            ax.plot(y_values, center, marker="o", markersize=3, color=color, label=label)
            ax.fill_between(y_values, center - width, center + width, color=color, alpha=0.2, linewidth=0)
        if _use_log_axis(y, y_values):
            _setup_log_x(ax, y_values)
        if log_y:
            ax.set_yscale("log", nonpositive="clip")
        ax.set_xlabel(axis_label(y))
        ax.grid(alpha=0.3, which="major")
        if selection:
            ax.set_title(selection_text(selection), fontsize=9)
        if finite.size == 0:
            ax.text(
                0.5,
                0.5,
                f"no {line_metric} values (missing, or every run diverged)",
                transform=ax.transAxes,
                ha="center",
                va="center",
                fontsize=8,
            )
    for ax in axes[::columns]:
        ax.set_ylabel(with_units(title, unit))
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    figure.legend(
        *axes[0].get_legend_handles_labels(),
        title=axis_label(group),
        loc="outside right upper",
        fontsize=8,
        title_fontsize=9,
        frameon=False,
    )
    set_title_lines(
        figure,
        [f"{title} against {axis_label(y)}", "mean over seeds (pairwise metrics: seed pairs), band = ±1 std", fixed_axes_text(phases)],
    )
    return figure


# Profiles drawn beside each curve (loss, error pairs) and their line styles: the straight line,
# the aligned line, the aligned curve. Older datasets lack some; all-NaN ones are not drawn.
COMPANION_PROFILES = (
    "line_train_loss",
    "line_train_error",
    "aligned_line_train_loss",
    "aligned_line_train_error",
    "aligned_curve_train_loss",
    "aligned_curve_train_error",
)
COMPANION_STYLES = ("--", ":", "-.")


def curves_figure(dataset: xr.Dataset, phases: xr.Dataset, *, x: str = "width", y: str = "batch_size") -> Figure:
    """Training loss and error along the mode-connecting curves vs t (solid) and along the
    straight lines between the same ends (dashed, Garipov et al.'s Figure 1), to the second
    model permuted onto the first (dotted, weight matching) and, with ``curves.fit_aligned``,
    along the curve fitted to that permuted model (dash-dot), one line per cell.

    One column per phase; lines coloured by the cell's plots.x value. A figure with a note is
    returned when there are no curve results (curves disabled or every fit missing).
    """
    check_axes(dataset, phases, x, y)
    loss, error = cell_mean(dataset, phases, "curve_train_loss"), cell_mean(dataset, phases, "curve_train_error")
    # The straight line between the same ends (dashed) and after alignment (dotted); older datasets lack them.
    companions = [cell_mean(dataset, phases, name) if name in dataset else None for name in COMPANION_PROFILES]
    x_values = axis_values(phases, x)
    cells = []  # (phase, x index, loss and error profiles, then those of the line and the aligned line)
    if loss is not None and error is not None:
        t = np.sort(loss["t"].values).astype(float)
        for cell in selections(phases, grid_axes(phases)):
            loss_profile, error_profile = _profile(loss, cell, "t"), _profile(error, cell, "t")
            lines = [_profile(v, cell, "t") if v is not None else np.full(len(t), np.nan) for v in companions]
            if np.isfinite(loss_profile).any() or np.isfinite(error_profile).any():
                phase = phase_strings(np.array([phases["phase"].sel(cell).item()]))[0]
                cells.append((phase, int(np.searchsorted(x_values, cell[x])), loss_profile, error_profile, *lines))
    if not cells:
        figure = new_figure(6.0, 3.0)
        ax = figure.subplots()
        ax.set_axis_off()
        ax.text(
            0.5,
            0.5,
            "no mode-connectivity curves in the dataset\n(curves.enabled is false, or every curve fit is missing)",
            ha="center",
            va="center",
            fontsize=10,
        )
        return figure

    columns = [p for p in PHASES if any(c[0] == p for c in cells)]
    figure = new_figure(3.0 * len(columns) + 1.5, 5.6)
    axes = figure.subplots(2, len(columns), squeeze=False, sharex=True, sharey="row")
    palette = ListedColormap(colormaps["viridis"](np.linspace(0.0, 0.9, len(x_values))))
    norm = BoundaryNorm(np.arange(len(x_values) + 1) - 0.5, palette.N)
    positive_loss = all(np.all(profile[np.isfinite(profile)] > 0) for c in cells for profile in (c[2], *c[4::2]))
    for column, phase in enumerate(columns):
        members = [c for c in cells if c[0] == phase]
        for _, x_index, loss_profile, error_profile, *line_profiles in members:
            color = palette(norm(x_index))
            axes[0, column].plot(t, loss_profile, color=color, alpha=0.8, linewidth=1)
            axes[1, column].plot(t, error_profile, color=color, alpha=0.8, linewidth=1)
            for index, line_profile in enumerate(line_profiles):  # loss, error of each companion in turn
                if np.isfinite(line_profile).any():
                    style = COMPANION_STYLES[index // 2]
                    axes[index % 2, column].plot(t, line_profile, color=color, alpha=0.6, linewidth=0.8, linestyle=style)
        axes[0, column].set_title(f"phase {phase} ({len(members)} cells)", fontsize=9)
        axes[1, column].set_xlabel("t (0, 1 = the two trained models)")
        for ax in axes[:, column]:
            ax.set_xlim(0, 1)
            ax.set_xticks(t, [f"{v:g}" for v in t] if len(t) <= 6 else None)  # the evaluated points
            ax.grid(alpha=0.3)
    if positive_loss:
        axes[0, 0].set_yscale("log")
    axes[0, 0].set_ylabel(with_units("training loss", units(dataset, "curve_train_loss")))
    axes[1, 0].set_ylabel(with_units("training error", units(dataset, "curve_train_error")))
    colorbar = figure.colorbar(
        ScalarMappable(norm=norm, cmap=palette), ax=axes, ticks=np.arange(len(x_values)), shrink=0.9, pad=0.01, aspect=30
    )
    colorbar.ax.set_yticklabels(tick_labels(x_values), fontsize=7)
    colorbar.set_label(axis_label(x))
    set_title_lines(
        figure,
        [
            "Training loss and error along the fitted curves between two seeds (solid), the straight lines between "
            "the same models (dashed), after weight matching (dotted) and the curve fitted after it (dash-dot, "
            "curves.fit_aligned), mean over pairs, one line per cell",
            fixed_axes_text(phases),
        ],
    )
    return figure

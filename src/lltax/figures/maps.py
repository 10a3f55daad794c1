"""Phase diagrams over two grid axes: metric panels (the paper's Figure 2) and the phase map.

Cells are drawn on index grids (one square per grid value, ticks labelled with the values), so
unevenly spaced grids look regular and no value is interpolated. Every other grid axis with more
than one value gives one row of panels per value.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import xarray as xr
from matplotlib import patheffects
from matplotlib.colors import CenteredNorm, LogNorm, Normalize
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from lltax.figures.grid import (
    MISSING_COLOR,
    MISSING_NOTE,
    PHASE_CELL_TEXT,
    PHASE_COLORS,
    PHASE_MEANINGS,
    PHASES,
    axis_label,
    axis_values,
    cell_edges,
    cell_mean,
    cell_table,
    check_axes,
    fixed_axes_text,
    labelled_regions,
    new_figure,
    phase_rgb,
    phase_strings,
    phase_text_color,
    region_anchor,
    selection_text,
    selections,
    set_title_lines,
    setup_category_axes,
    units,
    varying_axes,
)


class PanelMetric(NamedTuple):
    name: str  # variable of the dataset contract
    title: str
    scale: str  # linear | log | centered (diverging around 0)
    colormap: str


# The panels of Yang et al. 2021, Figure 2. Losses, Hessian metrics and distances span decades:
# log colour scales. Mode connectivity changes sign at the phase boundary: a diverging map
# centred on 0, coloured as in the paper (blue = barrier, mc < 0; red = mc > 0).
PANEL_METRICS = (
    PanelMetric("test_acc", "test accuracy", "linear", "viridis"),
    PanelMetric("train_loss", "training loss", "log", "viridis"),
    PanelMetric("hessian_top_eigenvalue", r"Hessian top eigenvalue $\lambda_{\max}$", "log", "magma"),
    PanelMetric("hessian_trace", "Hessian trace", "log", "magma"),
    PanelMetric("basin_width", "basin width (filter-normalized)", "log", "cividis"),
    PanelMetric("mode_connectivity", "mode connectivity mc", "centered", "RdBu_r"),
    # The same measurement along the straight line, and along the line after weight matching:
    # a barrier the curve removes (Garipov et al.), or that alignment removes (a permutation).
    PanelMetric("line_mode_connectivity", "mc along the straight line", "centered", "RdBu_r"),
    PanelMetric("aligned_line_mode_connectivity", "mc along the aligned line", "centered", "RdBu_r"),
    PanelMetric("cka", "CKA", "linear", "viridis"),
    PanelMetric("l2_distance", r"$\ell_2$ distance", "log", "viridis"),
)


# A panel's metric -> the variable saying how much of each cell's value is censored: a cell
# where it is above 0 holds a lower bound (basin rays that stayed below the rise up to
# basin.max_radius count the cap as their radius).
LOWER_BOUNDS = {"basin_width": "basin_censored"}


def lower_bound_tables(dataset: xr.Dataset, phases: xr.Dataset, x: str, y: str, rows: list[dict]) -> list[np.ndarray]:
    """Per row of panels, the (y, x) table of cells whose basin width is a lower bound: some
    seed's rays were censored (basin_censored > 0). All False without basin_censored."""
    censored = cell_mean(dataset, phases, LOWER_BOUNDS["basin_width"])
    if censored is None:
        return [np.zeros((phases.sizes[y], phases.sizes[x]), dtype=bool) for _ in rows]
    return [np.nan_to_num(cell_table(censored, x, y, selection).astype(float)) > 0 for selection in rows]


def mark_lower_bounds(ax, table: np.ndarray, fontsize: float) -> None:
    """'≥' in every cell of ``table`` (a (y, x) mask) whose value is a lower bound."""
    for row, column in zip(*np.nonzero(table)):
        text = ax.text(column, row, "≥", ha="center", va="center", fontsize=fontsize + 1, color="black", fontweight="bold")
        text.set_path_effects([patheffects.withStroke(linewidth=2, foreground="white")])  # legible on dark and light colours


def _masked(table: np.ndarray, scale: str) -> np.ma.MaskedArray:
    table = np.asarray(table, dtype=float)
    invalid = ~np.isfinite(table)
    if scale == "log":
        invalid |= ~(table > 0)
    return np.ma.masked_array(table, mask=invalid)


def panel_norm(scale: str, tables: list[np.ndarray]) -> Normalize | None:
    """One colour norm for a metric across all rows, so rows are comparable; None if no data."""
    values = np.concatenate([_masked(t, scale).compressed() for t in tables])
    if values.size == 0:
        return None
    low, high = float(values.min()), float(values.max())
    if scale == "log":
        return LogNorm(low / 2, high * 2) if low == high else LogNorm(low, high)
    if scale == "centered":
        return CenteredNorm(vcenter=0.0, halfrange=float(np.abs(values).max()) or 1.0)
    if low == high:
        low, high = low - 0.5, high + 0.5
    return Normalize(low, high)


def _panel_size(x_count: int, y_count: int) -> tuple[float, float]:
    return max(3.0, 2.2 + 0.14 * x_count), max(2.6, 1.6 + 0.12 * y_count)


def _phase_legend_handles(present: set[str], *, with_missing: bool) -> list[Patch]:
    handles = [Patch(facecolor=PHASE_COLORS[p], edgecolor="0.5", label=f"{p}: {PHASE_MEANINGS[p]}") for p in PHASES if p in present]
    if with_missing:
        handles.append(Patch(facecolor=MISSING_COLOR, edgecolor="0.5", label=MISSING_NOTE))
    return handles


def draw_phase_map(ax, phase_table: np.ndarray, confidence_table: np.ndarray, *, cell_text: bool, fontsize: float) -> None:
    """Phase colours (paler = less confident) with text: per cell, or one label per large region.

    Per cell, the phase sits just above the centre and its confidence just below, whichever way
    the y axis runs.
    """
    rows, columns = phase_table.shape
    ax.pcolormesh(cell_edges(columns), cell_edges(rows), phase_rgb(phase_table, confidence_table), edgecolors="white", linewidth=0.3)
    if cell_text:
        for (row, column), phase in np.ndenumerate(phase_table):
            color = phase_text_color(phase)
            confidence = confidence_table[row, column]
            if phase in PHASE_CELL_TEXT:
                ax.text(column, row, PHASE_CELL_TEXT[phase], ha="center", va="center", fontsize=fontsize, color=color)
                continue
            # No confidence on a labelled cell: too few samples to measure a spread (phases.py).
            below = f"{confidence:.2f}" if np.isfinite(confidence) else "thin"
            ax.text(column, row, phase, ha="center", va="bottom", fontsize=fontsize, color=color)
            ax.text(column, row, below, ha="center", va="top", fontsize=0.75 * fontsize, color=color, alpha=0.75)
    else:
        for phase, cells in labelled_regions(phase_table):
            row, column = region_anchor(cells)
            ax.text(
                column,
                row,
                PHASE_CELL_TEXT.get(phase, phase),
                ha="center",
                va="center",
                fontsize=fontsize,
                fontweight="bold",
                color=phase_text_color(phase),
            )


def _phase_tables(phases: xr.Dataset, x: str, y: str, selection: dict) -> tuple[np.ndarray, np.ndarray]:
    phase_table = phase_strings(cell_table(phases["phase"], x, y, selection))
    if "phase_confidence" in phases:
        confidence = cell_table(phases["phase_confidence"], x, y, selection).astype(float)
    else:
        confidence = np.full(phase_table.shape, np.nan)
    return phase_table, confidence


def panels_figure(dataset: xr.Dataset, phases: xr.Dataset, *, x: str = "width", y: str = "batch_size") -> Figure:
    """Figure-2-style panels: one per metric plus the phase map; one row per extra-axis value.

    Cell values are the means over seeds (per-model metrics) or seed pairs (pairwise metrics).
    """
    check_axes(dataset, phases, x, y)
    x_values, y_values = axis_values(phases, x), axis_values(phases, y)
    rows = selections(phases, varying_axes(phases, (x, y)))
    tables = {}
    for metric in PANEL_METRICS:
        mean = cell_mean(dataset, phases, metric.name)
        tables[metric.name] = [
            cell_table(mean, x, y, s) if mean is not None else np.full((len(y_values), len(x_values)), np.nan) for s in rows
        ]

    # Cells whose value is a lower bound (some basin ray reached basin.max_radius: censored).
    lower_bounds = lower_bound_tables(dataset, phases, x, y, rows)
    columns = len(PANEL_METRICS) + 1
    # One combination: wrap the panels into two rows (a spare slot stays empty); otherwise one
    # row per combination.
    grid_shape = (2, -(-columns // 2)) if len(rows) == 1 else (len(rows), columns)
    panel_width, panel_height = _panel_size(len(x_values), len(y_values))
    figure = new_figure(panel_width * grid_shape[1], panel_height * grid_shape[0] + 1.0)
    slots = figure.subplots(*grid_shape, squeeze=False).reshape(-1)
    for spare in slots[columns * len(rows) :]:
        spare.set_axis_off()
    axes = slots[: columns * len(rows)].reshape(len(rows), columns)
    many = max(len(x_values), len(y_values)) > 10
    fontsize = 6 if many else 7
    present: set[str] = set()

    def setup(ax) -> None:
        setup_category_axes(ax, x, y, x_values, y_values, fontsize=fontsize, rotate=len(x_values) > 8)
        # Axis names once per figure row / column: the panels share their axes.
        spec = ax.get_subplotspec()
        if not spec.is_first_col():
            ax.set_ylabel("")
        if not spec.is_last_row():
            ax.set_xlabel("")

    for column, metric in enumerate(PANEL_METRICS):
        norm = panel_norm(metric.scale, tables[metric.name])
        for row, table in enumerate(tables[metric.name]):
            ax = axes[row, column]
            ax.set_label(metric.name)
            setup(ax)
            ax.set_title(metric.title, fontsize=9)
            if metric.name in LOWER_BOUNDS and any(table.any() for table in lower_bounds):
                ax.set_title(f"{metric.title}\n≥: censored rays, a lower bound", fontsize=9)
            if norm is None:
                ax.text(0.5, 0.5, "no data", transform=ax.transAxes, ha="center", va="center", fontsize=8)
                continue
            mesh = ax.pcolormesh(
                cell_edges(len(x_values)), cell_edges(len(y_values)), _masked(table, metric.scale), cmap=metric.colormap, norm=norm
            )
            colorbar = figure.colorbar(mesh, ax=ax, shrink=0.95, pad=0.02)
            colorbar.set_label(units(dataset, metric.name), fontsize=7)
            colorbar.ax.tick_params(labelsize=fontsize + 1, which="both")
            if metric.name in LOWER_BOUNDS:
                mark_lower_bounds(ax, lower_bounds[row], fontsize)

    for row, selection in enumerate(rows):
        phase_table, confidence = _phase_tables(phases, x, y, selection)
        present |= set(phase_table.ravel())
        ax = axes[row, -1]
        ax.set_label("phase")
        setup(ax)
        draw_phase_map(ax, phase_table, confidence, cell_text=False, fontsize=8)
        ax.set_title("phase (paler = less confident)", fontsize=9)
        if selection:
            axes[row, 0].set_ylabel(f"{selection_text(selection)}\n{axis_label(y)}", fontsize=9)

    set_title_lines(
        figure,
        ["Loss-landscape metrics per cell: mean over seeds (pairwise metrics: over seed pairs)", fixed_axes_text(phases)],
        fontsize=11,
    )
    figure.legend(handles=_phase_legend_handles(present, with_missing=True), loc="outside lower center", ncol=4, fontsize=8, frameon=False)
    return figure


def thresholds_text(phases: xr.Dataset) -> str:
    """The classification thresholds of phases.nc, as one line of text.

    The sharpness threshold is per cell (the stability limit follows the learning rate): one
    value when all cells share it, else its range.
    """

    def value(key: str) -> str:
        number = phases.attrs.get(key)
        if number is None:
            return "not recorded"
        try:
            return f"{float(number):.3g}"
        except (TypeError, ValueError):
            return str(number)

    if "sharpness_threshold" in phases.data_vars:
        limits = np.unique(phases["sharpness_threshold"].values[np.isfinite(phases["sharpness_threshold"].values)])
        sharpness = (
            "n/a"
            if not len(limits)
            else f"{limits[0]:.3g}"
            if len(limits) == 1
            else f"{limits[0]:.3g}–{limits[-1]:.3g} (per learning rate)"
        )
    else:
        sharpness = value("sharpness_threshold")
    return (
        rf"sharp: $\lambda_{{\max}}$ > {sharpness};  "
        f"barrier (I, III): mc < -{value('connectivity_threshold')}; else connected (II, IV);  "
        f"IV-B: CKA ≥ {value('cka_threshold')}"
    )


def phases_figure(phases: xr.Dataset, *, x: str = "width", y: str = "batch_size") -> Figure:
    """The phase map alone, large: phase and confidence in every cell, thresholds on top."""
    check_axes(phases, phases, x, y)
    x_values, y_values = axis_values(phases, x), axis_values(phases, y)
    panels = selections(phases, varying_axes(phases, (x, y)))
    columns = min(3, len(panels))
    grid_rows = -(-len(panels) // columns)
    panel_width, panel_height = max(4.5, 1.5 + 0.55 * len(x_values)), max(3.5, 1.2 + 0.45 * len(y_values))
    figure = new_figure(panel_width * columns + 2.5, panel_height * grid_rows + 1.2)
    axes = figure.subplots(grid_rows, columns, squeeze=False).ravel()
    # Text size from the cell size in points, so labels fit their squares.
    cell_points = 72 * min(panel_width / len(x_values), panel_height / len(y_values))
    fontsize = float(np.clip(0.27 * cell_points, 4, 10))
    present: set[str] = set()
    for ax, selection in zip(axes, panels):
        phase_table, confidence = _phase_tables(phases, x, y, selection)
        present |= set(phase_table.ravel())
        ax.set_label("phase")
        setup_category_axes(ax, x, y, x_values, y_values, fontsize=8, rotate=cell_points < 30)
        draw_phase_map(ax, phase_table, confidence, cell_text=True, fontsize=fontsize)
        if selection:
            ax.set_title(selection_text(selection), fontsize=10)
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    set_title_lines(
        figure,
        [
            "Phases (Yang et al. 2021); in each cell: phase and confidence = predicted replicate agreement (paler = less confident; thin = too few samples)",
            thresholds_text(phases),
            fixed_axes_text(phases),
        ],
    )
    figure.legend(handles=_phase_legend_handles(present, with_missing=False), loc="outside right center", fontsize=9, frameon=False)
    return figure

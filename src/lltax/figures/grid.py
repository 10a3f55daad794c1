"""Shared pieces of lltax's figures: grid axes, cell tables, categorical axes, phase colours.

Figures read two datasets (DESIGN.md, "The dataset contract"): ``dataset.nc`` with per-seed and
per-pair values, and ``phases.nc`` with cell-level ``<var>_mean``/``<var>_std``, ``phase`` and
``phase_confidence`` over the grid axes only. Everything here turns them into 2D tables over two
grid axes (x, y) at fixed values of the other axes, and draws those tables on categorical axes.
"""

from __future__ import annotations

import itertools
import math
import textwrap

import numpy as np
import xarray as xr
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure

from lltax.contract import PHASES  # noqa: F401  (re-exported for the figure modules)

AXIS_LABELS = {
    "width": "width k",
    "batch_size": "batch size",
    "label_noise": "label noise",
    "train_fraction": "training fraction",
    "learning_rate": "learning rate",
    "weight_decay": "weight decay",
}

# Temperature axes where SMALL values are hot: SGD noise grows as the batch shrinks (Yang et al.
# 2021, Sec. 2). Phase diagrams put high temperature at the top, so these y axes are inverted;
# learning rate and weight decay are hot when large and already grow upwards.
HOT_WHEN_SMALL = ("batch_size",)

# Colours and meaning of each phase (DESIGN.md, "Phases"); the order is lltax.contract.PHASES.
PHASE_COLORS = {
    "I": "#d7301f",
    "II": "#fd8d3c",
    "III": "#807dba",
    "IV-A": "#4292c6",
    "IV-B": "#41ab5d",
    "diverged": "#252525",
    "unknown": "#f2f2f2",
}
PHASE_MEANINGS = {
    "I": "sharp, poorly connected",
    "II": "sharp, connected (no significant barrier)",
    "III": "flat, poorly connected",
    "IV-A": "flat, connected, low CKA",
    "IV-B": "flat, connected, high CKA",
    "diverged": "training diverged",
    "unknown": "undecided or metrics missing",
}
# Short text drawn inside cells.
PHASE_CELL_TEXT = {"diverged": "×", "unknown": "?"}
MISSING_COLOR = "#c8c8c8"
MISSING_NOTE = "grey: no data (missing, diverged, or non-positive on a log scale)"


def new_figure(width: float, height: float) -> Figure:
    """A figure on an Agg canvas (draws and saves without a display), constrained layout."""
    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def axis_label(axis: str) -> str:
    return AXIS_LABELS.get(axis, axis.replace("_", " "))


def grid_axes(phases: xr.Dataset) -> list[str]:
    """The grid axes: the dimensions of the cell-level ``phase`` variable."""
    if "phase" not in phases:
        raise ValueError("the phases dataset has no 'phase' variable; pass the phases.nc written by the classify step")
    return [str(d) for d in phases["phase"].dims]


def check_axes(dataset: xr.Dataset, phases: xr.Dataset, x: str, y: str) -> None:
    """Raise ValueError unless x and y are two different grid axes of both datasets."""
    axes = grid_axes(phases)
    for key, axis in (("x", x), ("y", y)):
        if axis not in axes or axis not in dataset.dims:
            raise ValueError(f"plots.{key} = {axis!r} is not a grid axis of the dataset; choose one of {axes}")
    if x == y:
        raise ValueError(f"plots.x and plots.y must be two different grid axes, both are {x!r}")


def check_same_grid(dataset: xr.Dataset, phases: xr.Dataset) -> None:
    """Raise ValueError unless the phases were classified from a dataset of this grid and seeds."""
    for name in (*grid_axes(phases), "seed", "pair"):
        if name in dataset.coords and name in phases.coords and not np.array_equal(dataset[name].values, phases[name].values):
            raise ValueError(
                f"the phases file holds another grid than the dataset ({name}: {phases[name].values.tolist()} vs "
                f"{dataset[name].values.tolist()}); classify this dataset (lltax classify) and plot that"
            )
    missing = [axis for axis in grid_axes(phases) if axis not in dataset.coords]
    if missing:
        raise ValueError(f"the dataset lacks the grid axes {missing} of the phases file; pass the dataset it was classified from")


def axis_values(phases: xr.Dataset, axis: str) -> np.ndarray:
    return np.sort(phases[axis].values)


def varying_axes(phases: xr.Dataset, exclude: tuple[str, ...]) -> list[str]:
    """Grid axes with more than one value, other than those in ``exclude``, in grid order."""
    return [a for a in grid_axes(phases) if a not in exclude and phases.sizes[a] > 1]


def selections(phases: xr.Dataset, axes: list[str]) -> list[dict]:
    """Every combination of values of ``axes`` as {axis: value} (one empty dict if no axes)."""
    values = [axis_values(phases, a).tolist() for a in axes]
    return [dict(zip(axes, combo)) for combo in itertools.product(*values)]


def selection_text(selection: dict) -> str:
    return ", ".join(f"{axis_label(a)} = {v:g}" for a, v in selection.items())


def fixed_axes_text(phases: xr.Dataset) -> str:
    """'label noise = 0, ...' for the size-1 grid axes: the settings every figure shares."""
    fixed = {a: phases[a].values[0] for a in grid_axes(phases) if phases.sizes[a] == 1}
    # No-break spaces inside each 'name = value', so a wrapped title never splits one.
    return ", ".join(f"{axis_label(a)} = {v:g}".replace(" ", "\u00a0") for a, v in fixed.items())


def cell_mean(dataset: xr.Dataset, phases: xr.Dataset, name: str) -> xr.DataArray | None:
    """Cell-level mean of ``name``: phases' ``<name>_mean``, else the seed/pair mean of the dataset.

    Returns None when neither dataset has the variable (e.g. curves were disabled).
    """
    if f"{name}_mean" in phases:
        return phases[f"{name}_mean"]
    if name in dataset:
        array = dataset[name].astype(float)
        return array.mean([d for d in ("seed", "pair") if d in array.dims], skipna=True)
    return None


def units(dataset: xr.Dataset, name: str) -> str:
    """The variable's units attribute; '' when absent or dimensionless ('1')."""
    text = str(dataset[name].attrs.get("units", "")) if name in dataset else ""
    return "" if text == "1" else text


def with_units(label: str, unit: str) -> str:
    return f"{label} ({unit})" if unit else label


def set_title_lines(figure: Figure, lines: list[str], *, fontsize: float = 10) -> None:
    """Figure title from non-empty lines, each wrapped to the figure width (no clipped titles)."""
    characters = max(30, int(0.85 * figure.get_figwidth() * 72 / (0.6 * fontsize)))
    wrapped = [textwrap.fill(line, characters) for line in lines if line]
    figure.suptitle("\n".join(wrapped), fontsize=fontsize)


def cell_table(array: xr.DataArray, x: str, y: str, selection: dict) -> np.ndarray:
    """The (y, x) table of ``array`` at ``selection``, both axes ascending.

    Size-1 grid axes are dropped; any other dimension left over is an error (reduce it first).
    """
    array = array.sel(selection)
    for dim in list(array.dims):
        if dim in (x, y):
            continue
        if array.sizes[dim] != 1:
            raise ValueError(f"{array.name}: dimension {dim!r} (size {array.sizes[dim]}) is neither plotted nor selected")
        array = array.isel({dim: 0})
    return array.sortby([x, y]).transpose(y, x).values


def phase_strings(table: np.ndarray) -> np.ndarray:
    """Phase labels as str, with missing entries (None, NaN, '', unknown names) as 'unknown'."""

    def clean(value) -> str:
        if isinstance(value, bytes):
            value = value.decode()
        return value if isinstance(value, str) and value in PHASE_COLORS else "unknown"

    return np.vectorize(clean, otypes=[object])(table)


# ---------------------------------------------------------------------------------------------
# Categorical axes


def _exponents(values: np.ndarray, base: int) -> list[int] | None:
    """Integer exponents if every value is an exact power of ``base``, else None."""
    if np.any(~np.isfinite(values)) or np.any(values <= 0):
        return None
    exponents = [round(math.log(v, base)) for v in values]
    if all(math.isclose(base**k, v, rel_tol=1e-9) for k, v in zip(exponents, values)):
        return exponents
    return None


def power_base(values: np.ndarray) -> int | None:
    """2 or 10 when all values (at least three) are powers of it, else None."""
    values = np.asarray(values, dtype=float)
    if len(values) < 3:
        return None
    for base in (2, 10):
        if _exponents(values, base) is not None:
            return base
    return None


def tick_labels(values: np.ndarray) -> list[str]:
    """Tick labels for grid values: 2^k / 10^k when they are all powers, else plain numbers."""
    base = power_base(values)
    if base is None:
        return [f"{v:g}" for v in values]
    return [f"${base}^{{{k}}}$" for k in _exponents(np.asarray(values, dtype=float), base)]


def setup_category_axes(
    ax, x: str, y: str, x_values: np.ndarray, y_values: np.ndarray, *, fontsize: float = 7, rotate: bool = False
) -> None:
    """Index-grid axes: cell (i, j) is centred on (i, j), ticks labelled with the grid values."""
    # Mathtext superscripts come out small: powers get a point more.
    x_size = fontsize + (power_base(x_values) is not None)
    y_size = fontsize + (power_base(y_values) is not None)
    ax.set_xticks(range(len(x_values)), tick_labels(x_values), fontsize=x_size, rotation=90 if rotate else 0)
    ax.set_yticks(range(len(y_values)), tick_labels(y_values), fontsize=y_size)
    ax.set_xlim(-0.5, len(x_values) - 0.5)
    ax.set_ylim(-0.5, len(y_values) - 0.5)
    if y in HOT_WHEN_SMALL:
        ax.invert_yaxis()
    ax.set_xlabel(axis_label(x))
    ax.set_ylabel(axis_label(y))
    ax.tick_params(length=2)
    ax.set_facecolor(MISSING_COLOR)


def cell_edges(count: int) -> np.ndarray:
    return np.arange(count + 1) - 0.5


# ---------------------------------------------------------------------------------------------
# Phase maps


def shade(color: str, confidence: float) -> np.ndarray:
    """RGB of ``color`` blended with white: full colour at confidence 1, 30 % at confidence 0.

    A NaN confidence (thin evidence: too few samples to measure one) is drawn at full colour.
    """
    strength = 1.0 if not np.isfinite(confidence) else 0.3 + 0.7 * float(np.clip(confidence, 0.0, 1.0))
    return 1.0 - strength * (1.0 - np.asarray(to_rgb(color)))


def phase_rgb(phase_table: np.ndarray, confidence_table: np.ndarray) -> np.ndarray:
    """(ny, nx, 3) colours of a phase map, paler where the classification is less certain."""
    rgb = np.empty(phase_table.shape + (3,))
    for index, phase in np.ndenumerate(phase_table):
        confidence = confidence_table[index] if phase not in ("diverged", "unknown") else 1.0
        rgb[index] = shade(PHASE_COLORS[phase], confidence)
    return rgb


def phase_regions(phase_table: np.ndarray) -> list[tuple[str, list[tuple[int, int]]]]:
    """Connected regions (4-neighbour) of equal phase as (phase, [(row, column), ...])."""
    rows, columns = phase_table.shape
    seen = np.zeros(phase_table.shape, dtype=bool)
    regions = []
    for start in itertools.product(range(rows), range(columns)):
        if seen[start]:
            continue
        phase, stack, cells = phase_table[start], [start], []
        seen[start] = True
        while stack:
            row, column = stack.pop()
            cells.append((row, column))
            for neighbour in ((row + 1, column), (row - 1, column), (row, column + 1), (row, column - 1)):
                if 0 <= neighbour[0] < rows and 0 <= neighbour[1] < columns and not seen[neighbour] and phase_table[neighbour] == phase:
                    seen[neighbour] = True
                    stack.append(neighbour)
        regions.append((phase, sorted(cells)))
    return regions


def labelled_regions(phase_table: np.ndarray, min_cells: int = 3) -> list[tuple[str, list[tuple[int, int]]]]:
    """Regions worth a label in a small map: at least ``min_cells`` cells, or the largest of its phase."""
    chosen, labelled = [], set()
    for phase, cells in sorted(phase_regions(phase_table), key=lambda region: -len(region[1])):
        if len(cells) >= min_cells or phase not in labelled:
            chosen.append((phase, cells))
            labelled.add(phase)
    return chosen


def region_anchor(cells: list[tuple[int, int]]) -> tuple[int, int]:
    """The region's cell nearest its centroid, so the label sits inside the region."""
    centre = np.mean(cells, axis=0)
    return min(cells, key=lambda cell: (cell[0] - centre[0]) ** 2 + (cell[1] - centre[1]) ** 2)


def phase_text_color(phase: str) -> str:
    return "white" if phase == "diverged" else "black"

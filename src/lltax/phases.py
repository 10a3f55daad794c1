"""Phase classification of grid cells (Yang et al. 2021, Table 1; DESIGN.md "Phases").

Each cell is reduced over its seeds / seed pairs (``<var>_mean``, ``<var>_std``), then:

- sharp vs flat: cell-mean Hessian top eigenvalue above / at or below ``sharpness_threshold``;
- poorly vs well connected: cell-mean mode connectivity mc < -``connectivity_threshold`` or not;
- IV-A vs IV-B (flat and connected cells): cell-mean CKA below / at or above ``cka_threshold``.

| sharp, mc < -c: I | sharp, mc >= -c: II | flat, mc < -c: III | flat, mc >= -c: IV-A (CKA < k) or IV-B |

A cell where most seeds diverged is ``diverged``; one whose needed metrics are missing is
``unknown``. The reference code draws the boundaries by hand; here every threshold has an
automatic default derived from the grid itself, always by the same rule, a two-means split
(Otsu's method in 1D: the boundary between the two clusters that minimise the within-cluster
variance), applied to:

- sharpness: log10 of the cell-mean top eigenvalues of all non-diverged cells (sharp and flat
  minima differ by orders of magnitude, so the split is taken on a log scale);
- connectivity: log10 of the barrier heights -mc of the cells with mc < 0 (it separates
  barriers at the level of noise, which count as connected, from real ones; with no barrier
  at all every cell is connected and 0 is used);
- CKA: the cell-mean CKA of the flat, well-connected cells (the only ones it decides).

``phase_confidence`` is the share of bootstrap resamples (seeds resampled for per-model
metrics, pairs for per-pair metrics, thresholds held fixed) that give the cell's phase.
"""

from __future__ import annotations

import argparse
import logging
import math
import warnings
from typing import Any

import numpy as np
import xarray as xr

from lltax.config import AXES, canonical_json
from lltax.dataset import read_dataset, write_dataset

log = logging.getLogger(__name__)

PHASES = ("I", "II", "III", "IV-A", "IV-B", "diverged", "unknown")
_CODE = {name: code for code, name in enumerate(PHASES)}

# Variables the decision reads (cell means of these).
EIGENVALUE, CONNECTIVITY, CKA, DIVERGED = "hessian_top_eigenvalue", "mode_connectivity", "cka", "diverged"


# ---------------------------------------------------------------------------------------------
# Automatic thresholds


def two_means_split(values: np.ndarray) -> tuple[float, float]:
    """Exact 1D two-means (Otsu) split of the finite values.

    Returns
    -------
    (boundary, separability): the midpoint of the two cluster means (every value lies on its
    own cluster's side of it), and the between-cluster share of the total variance (near 1:
    two well-separated groups; near 0: no real split). NaN, NaN with fewer than 2 distinct values.
    """
    values = np.sort(np.asarray(values, dtype=np.float64).ravel())
    values = values[np.isfinite(values)]
    n = len(values)
    if n < 2 or values[0] == values[-1]:
        return math.nan, math.nan
    prefix = np.cumsum(values)[:-1]
    low_count = np.arange(1, n)
    low_mean = prefix / low_count
    high_mean = (values.sum() - prefix) / (n - low_count)
    between = low_count * (n - low_count) * (low_mean - high_mean) ** 2 / n**2
    # A split between equal values is not a split.
    between[values[1:] == values[:-1]] = -1.0
    best = int(np.argmax(between))
    return float((low_mean[best] + high_mean[best]) / 2), float(between[best] / values.var())


def auto_sharpness_threshold(eigenvalue_mean: np.ndarray) -> tuple[float, str]:
    """Two-means boundary of log10 cell-mean top eigenvalues (positive, finite ones)."""
    values = np.asarray(eigenvalue_mean, dtype=np.float64)
    values = values[np.isfinite(values) & (values > 0)]
    boundary, separability = two_means_split(np.log10(values))
    note = (
        f"auto: two-means split of log10 cell-mean top Hessian eigenvalue over {len(values)} cells "
        f"(separability {separability:.2f})"
    )
    return 10.0**boundary, note


def auto_connectivity_threshold(mode_connectivity_mean: np.ndarray) -> tuple[float, str]:
    """Two-means boundary of log10 barrier heights -mc over the cells with mc < 0.

    Barriers below 1e-9 of the largest one are float round-off of mc = 0 and are left out
    (their logarithm would be an outlier that drags the split).
    """
    barriers = -np.asarray(mode_connectivity_mean, dtype=np.float64)
    barriers = barriers[np.isfinite(barriers) & (barriers > 0)]
    if len(barriers):
        barriers = barriers[barriers > 1e-9 * barriers.max()]
    if len(barriers) == 0:
        return 0.0, "auto: no cell has mc < 0, so every cell is connected for any threshold; 0 used"
    boundary, separability = two_means_split(np.log10(barriers))
    note = (
        f"auto: two-means split of log10(-mc) over the {len(barriers)} cells with mc < 0 "
        f"(separability {separability:.2f})"
    )
    return 10.0**boundary, note


def auto_cka_threshold(cka_mean: np.ndarray, flat_connected: np.ndarray) -> tuple[float, str]:
    """Two-means boundary of cell-mean CKA over the flat, well-connected cells."""
    values = np.asarray(cka_mean, dtype=np.float64)[np.asarray(flat_connected, dtype=bool)]
    values = values[np.isfinite(values)]
    boundary, separability = two_means_split(values)
    note = f"auto: two-means split of cell-mean CKA over the {len(values)} flat, connected cells (separability {separability:.2f})"
    return boundary, note


# ---------------------------------------------------------------------------------------------
# The decision


def decide_phase(
    top_eigenvalue: np.ndarray,
    mode_connectivity: np.ndarray,
    cka: np.ndarray,
    diverged_fraction: np.ndarray,
    *,
    sharpness_threshold: float,
    connectivity_threshold: float,
    cka_threshold: float,
) -> np.ndarray:
    """Phase codes (indices into PHASES) of cell means, elementwise; any broadcastable shapes.

    A NaN metric or threshold that the decision needs gives ``unknown`` (except that mc >= 0
    is connected even without a connectivity threshold); a diverged fraction above 1/2 gives
    ``diverged`` whatever the metrics.
    """
    top_eigenvalue, mode_connectivity, cka, diverged_fraction = np.broadcast_arrays(
        *(np.asarray(a, dtype=np.float64) for a in (top_eigenvalue, mode_connectivity, cka, diverged_fraction))
    )
    with np.errstate(invalid="ignore"):
        local_known = np.isfinite(top_eigenvalue) & math.isfinite(sharpness_threshold)
        cka_known = np.isfinite(cka) & math.isfinite(cka_threshold)
        sharp = top_eigenvalue > sharpness_threshold
        if math.isfinite(connectivity_threshold):
            global_known = np.isfinite(mode_connectivity)
            connected = mode_connectivity >= -connectivity_threshold
        else:
            # No threshold (too few barriers to split): mc >= 0 is connected for any threshold >= 0.
            connected = mode_connectivity >= 0
            global_known = connected
        high_cka = cka >= cka_threshold
    known = local_known & global_known
    codes = np.full(top_eigenvalue.shape, _CODE["unknown"], dtype=np.int8)
    codes[known & sharp & ~connected] = _CODE["I"]
    codes[known & sharp & connected] = _CODE["II"]
    codes[known & ~sharp & ~connected] = _CODE["III"]
    codes[known & ~sharp & connected & cka_known & ~high_cka] = _CODE["IV-A"]
    codes[known & ~sharp & connected & cka_known & high_cka] = _CODE["IV-B"]
    codes[diverged_fraction > 0.5] = _CODE["diverged"]
    return codes


# ---------------------------------------------------------------------------------------------
# Cell reductions and bootstrap


def cell_reductions(dataset: xr.Dataset) -> xr.Dataset:
    """``<var>_mean`` and ``<var>_std`` (ddof=1) over seed or pair of every variable, NaN-skipping."""
    reduced = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN cells give NaN, as they should
        for name, variable in dataset.data_vars.items():
            over = [d for d in ("seed", "pair") if d in variable.dims]
            if not over:
                continue
            what = "seeds" if over == ["seed"] else "seed pairs"
            for statistic in ("mean", "std"):
                if statistic == "mean":
                    values = variable.mean(over, skipna=True, keep_attrs=True)
                else:
                    values = variable.std(over, skipna=True, ddof=1, keep_attrs=True)
                values.attrs = {
                    "units": variable.attrs.get("units", ""),
                    "long_name": f"{variable.attrs.get('long_name', name)} ({statistic} over {what})",
                }
                reduced[f"{name}_{statistic}"] = values
    return xr.Dataset(reduced)


def _cells_by_samples(variable: xr.DataArray, sample_dim: str) -> np.ndarray:
    """(cells, samples) array with the grid axes flattened in AXES order."""
    cells = math.prod(variable.sizes[axis] for axis in AXES)
    return variable.transpose(*AXES, sample_dim).values.reshape(cells, variable.sizes[sample_dim])


def _bootstrap_means(values: np.ndarray, rng: np.random.Generator, resamples: int) -> np.ndarray:
    """(resamples, cells) means of per-cell resamples with replacement among the finite samples."""
    cells, samples = values.shape
    if samples == 0:
        return np.full((resamples, cells), np.nan)
    finite = np.isfinite(values)
    count = finite.sum(axis=1)
    # Finite samples first in each row, so "draw among the first count" is one index range.
    packed = np.take_along_axis(values, np.argsort(~finite, axis=1, kind="stable"), axis=1)
    draws = np.floor(rng.random((resamples, cells, samples)) * count[None, :, None]).astype(np.int64)
    picked = packed[np.arange(cells)[None, :, None], draws]
    used = np.arange(samples)[None, None, :] < count[None, :, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(used, picked, 0.0).sum(axis=2) / count[None, :]


def bootstrap_confidence(
    dataset: xr.Dataset, phase_codes: np.ndarray, thresholds: dict[str, float], resamples: int, seed: int
) -> np.ndarray:
    """Share of bootstrap resamples that reproduce each cell's phase (NaN for unknown cells).

    Seeds are resampled for the per-model metrics (eigenvalue, diverged flag) and seed pairs
    for the per-pair ones (mc, CKA), independently, each among the cell's finite values.
    """
    flat_codes = phase_codes.reshape(-1)
    confidence = np.full(flat_codes.shape, np.nan)
    if resamples > 0:
        rng = np.random.default_rng(seed)
        sources = [
            _cells_by_samples(dataset[EIGENVALUE], "seed"),
            _cells_by_samples(dataset[CONNECTIVITY], "pair"),
            _cells_by_samples(dataset[CKA], "pair"),
            _cells_by_samples(dataset[DIVERGED], "seed"),
        ]
        agree = np.zeros(flat_codes.shape)
        # Chunks bound the memory of the (resamples, cells, samples) draws on large grids.
        chunk = max(1, 2_000_000 // max(1, flat_codes.size * max(s.shape[1] for s in sources)))
        for start in range(0, resamples, chunk):
            size = min(chunk, resamples - start)
            means = [_bootstrap_means(values, rng, size) for values in sources]
            codes = decide_phase(*means, **thresholds)
            agree += (codes == flat_codes[None, :]).sum(axis=0)
        confidence = agree / resamples
    confidence[flat_codes == _CODE["unknown"]] = np.nan
    return confidence.reshape(phase_codes.shape)


# ---------------------------------------------------------------------------------------------
# classify


def _setting(value: Any, name: str, allowed: str, in_range) -> float | None:
    """None for 'auto', else the number, checked against its range (``allowed`` describes it)."""
    if value == "auto":
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not in_range(value):
        raise ValueError(f"classify setting {name!r} must be 'auto' or a number {allowed}, got {value!r}")
    return float(value)


def classify(
    dataset: xr.Dataset,
    *,
    sharpness_threshold: float | str = "auto",
    connectivity_threshold: float | str = "auto",
    cka_threshold: float | str = "auto",
    resamples: int = 200,
    seed: int = 0,
) -> xr.Dataset:
    """Phases of every grid cell of a contract dataset.

    Parameters
    ----------
    dataset
        The merged dataset (``lltax.dataset``), with at least hessian_top_eigenvalue,
        mode_connectivity, cka and diverged.
    sharpness_threshold, connectivity_threshold, cka_threshold
        A number, or "auto" for the two-means default derived from the grid (module docstring).
    resamples
        Bootstrap resamples for ``phase_confidence`` (0: confidence is NaN).
    seed
        Seed of the bootstrap.

    Returns
    -------
    The input dataset plus ``<var>_mean``/``<var>_std`` per variable, ``phase`` (strings of
    PHASES, over the grid axes) and ``phase_confidence``; attributes hold the thresholds used,
    a note per threshold (auto or set) and the settings (``classify_settings``).
    """
    missing = [name for name in (EIGENVALUE, CONNECTIVITY, CKA, DIVERGED) if name not in dataset]
    if missing:
        raise ValueError(f"dataset lacks variables {missing}; build it with `lltax aggregate` / `lltax merge`")
    if isinstance(resamples, bool) or not isinstance(resamples, int) or resamples < 0:
        raise ValueError(f"classify setting 'resamples' must be an integer >= 0, got {resamples!r}")
    settings = {
        "sharpness_threshold": sharpness_threshold,
        "connectivity_threshold": connectivity_threshold,
        "cka_threshold": cka_threshold,
        "resamples": resamples,
        "seed": seed,
    }
    reductions = cell_reductions(dataset)
    means = {name: reductions[f"{name}_mean"].transpose(*AXES).values for name in (EIGENVALUE, CONNECTIVITY, CKA, DIVERGED)}
    alive = ~(means[DIVERGED] > 0.5)

    thresholds, notes = {}, {}
    value = _setting(sharpness_threshold, "sharpness_threshold", "> 0", lambda v: v > 0)
    thresholds["sharpness_threshold"], notes["sharpness_threshold"] = (
        auto_sharpness_threshold(means[EIGENVALUE][alive]) if value is None else (value, "set")
    )
    value = _setting(connectivity_threshold, "connectivity_threshold", "", lambda v: True)
    thresholds["connectivity_threshold"], notes["connectivity_threshold"] = (
        auto_connectivity_threshold(means[CONNECTIVITY][alive]) if value is None else (value, "set")
    )
    value = _setting(cka_threshold, "cka_threshold", "in [0, 1]", lambda v: 0 <= v <= 1)
    if value is None:
        with np.errstate(invalid="ignore"):
            flat_connected = (
                alive
                & (means[EIGENVALUE] <= thresholds["sharpness_threshold"])
                & (means[CONNECTIVITY] >= -thresholds["connectivity_threshold"])
            )
        thresholds["cka_threshold"], notes["cka_threshold"] = auto_cka_threshold(means[CKA], flat_connected)
    else:
        thresholds["cka_threshold"], notes["cka_threshold"] = value, "set"
    for name, threshold in thresholds.items():
        if not math.isfinite(threshold):
            log.warning("%s could not be derived (%s); cells it decides are 'unknown'; set classify.%s", name, notes[name], name)

    codes = decide_phase(*(means[n] for n in (EIGENVALUE, CONNECTIVITY, CKA, DIVERGED)), **thresholds)
    confidence = bootstrap_confidence(dataset, codes, thresholds, resamples, seed)

    grid_coords = {axis: dataset[axis] for axis in AXES}
    phases = dataset.copy()
    for name, variable in reductions.items():
        phases[name] = variable
    phases["phase"] = xr.DataArray(
        np.asarray(PHASES, dtype="<U8")[codes],
        dims=AXES,
        coords=grid_coords,
        attrs={"units": "", "long_name": "loss-landscape phase (Yang et al. 2021)", "phase_values": " ".join(PHASES)},
    )
    phases["phase_confidence"] = xr.DataArray(
        confidence,
        dims=AXES,
        coords=grid_coords,
        attrs={"units": "1", "long_name": "share of bootstrap resamples over seeds/pairs giving the same phase"},
    )
    for name, threshold in thresholds.items():
        phases.attrs[name] = float(threshold)
        phases.attrs[f"{name}_source"] = notes[name]
    phases.attrs["classify_settings"] = canonical_json(settings)
    return phases


def phase_table(phases: xr.Dataset, row: str = "width", column: str = "batch_size", variable: str = "phase") -> str:
    """A plain-text table of one variable over two grid axes (others must have size 1)."""
    others = [axis for axis in AXES if axis not in (row, column) and phases.sizes[axis] > 1]
    if others:
        raise ValueError(f"axes {others} have more than one value; select one (phases.sel(...)) before tabulating")
    table = phases[variable].squeeze([a for a in AXES if a not in (row, column)], drop=True).transpose(row, column)
    cells = [[f"{v:.2f}" if isinstance(v, float) else str(v) for v in line] for line in table.values.tolist()]
    header = [f"{row}\\{column}"] + [str(v) for v in table[column].values.tolist()]
    rows = [[str(v)] + line for v, line in zip(table[row].values.tolist(), cells)]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return "\n".join(" ".join(text.rjust(w) for text, w in zip(r, widths)) for r in [header, *rows])


# ---------------------------------------------------------------------------------------------
# CLI


def _run_classify(args: argparse.Namespace) -> int:
    from lltax.config import parse_settings

    phases = classify(read_dataset(args.dataset), **parse_settings(args.settings, "classify"))
    for name in ("sharpness_threshold", "connectivity_threshold", "cka_threshold"):
        print(f"{name} = {phases.attrs[name]:.6g}  ({phases.attrs[name + '_source']})")
    counts = {p: int((phases["phase"].values == p).sum()) for p in PHASES}
    print("cells per phase: " + ", ".join(f"{p}: {n}" for p, n in counts.items() if n))
    write_dataset(phases, args.phases)
    log.info("wrote %s", args.phases)
    return 0


def add_cli(subparsers) -> None:
    p = subparsers.add_parser("classify", help="classify every grid cell into a loss-landscape phase")
    p.add_argument("dataset", help="dataset.nc from `lltax merge` / `lltax aggregate`")
    p.add_argument("phases", help="output phases.nc")
    p.add_argument("--settings", default="{}", help="the config section 'classify' as JSON")
    p.set_defaults(func=_run_classify)

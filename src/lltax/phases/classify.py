"""Phase classification of grid cells (Yang et al. 2021, Table 1; DESIGN.md "Phases").

A cell's phase follows from its own measurements and the settings that produced them, never
from which other cells the grid holds. Three decisions, each on the cell's samples (seeds for
the Hessian, curves for mode connectivity, seed pairs for CKA):

- **sharp vs flat**: the cell-mean top Hessian eigenvalue against the optimizer's stability
  limit. SGD with heavy-ball momentum beta and learning rate eta is linearly unstable along a
  direction of curvature above 2(1 + beta) / eta (Cohen et al. 2021, "edge of stability"), so a
  minimum at that limit is as sharp as this optimizer tolerates; a flat one sits well below
  it. Sharp: eigenvalue > ``sharpness_ratio`` x 2(1 + beta) / eta, with eta the cell's
  (peak) learning rate. On the paper's grid (eta 0.1, beta 0.9: limit 38) its flat cells read
  at most ~35 and its sharp ones at least ~38.
- **poorly vs well connected**: a barrier needs both a cell-mean mc below ``-connectivity
  threshold`` (a floor in percentage points of training error: smaller barriers do not count)
  and, where the cell has two or more curves, mc significantly below 0 (one-sided t-test at
  level ``significance`` over the curves). A mean below the floor that is not significant
  gives ``unknown``: the data cannot decide.
- **IV-A vs IV-B** (flat, connected cells): cell-mean CKA below / at or above ``cka_threshold``.

| sharp, barrier: I | sharp, connected: II | flat, barrier: III | flat, connected: IV-A / IV-B |

A cell where more than half the seeds diverged is ``diverged``; a cell without a metric a
decision needs is ``unknown``. Every cell gets a ``phase_reason`` saying which measurements
against which thresholds gave its label.

``phase_confidence`` is the predicted probability that an independent replicate of the cell
(new seeds, as many seeds and curves) gets the same label: for each decision on the cell's
path, the probability that the replicate's mean lands on the same side of the threshold,
P = F_{n-1}(|mean - threshold| / (s sqrt(2/n))) with F_{n-1} Student's t distribution, s the
sample standard deviation over the n samples (so seed spread, pair spread and curve-fitting
noise all enter through the samples they perturb). For a barrier the replicate must also find
its barrier significant (else it is ``unknown``): that probability is the posterior predictive
of the mean-below-floor-and-significant event (``Estimate.replicate_barrier``). The cell's
confidence is the product over its decisions. A decision
resting on fewer than ``min_samples`` samples has no measured spread worth the name: the cell
reports thin evidence and no confidence. ``benchmarks/bench_calibration.py`` checks the
calibration against replicate runs.

Grid-relative thresholds (the two-means split over the grid's cells) remain as an explicit
option (``"grid"``) for exploration; they make a label depend on the other cells.
"""

from __future__ import annotations

import json
import logging
import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr

from lltax.config.grid import canonical_json
from lltax.config.schema import section_settings
from lltax.contract import AXES, PHASES
from lltax.phases.advice import advice_variables
from lltax.phases.statistics import Estimate, cell_reductions, grid_split, stability_limit
from lltax.results.netcdf import check_values

log = logging.getLogger(__name__)

# Variables the decisions read.
EIGENVALUE, CONNECTIVITY, CKA, DIVERGED = "hessian_top_eigenvalue", "mode_connectivity", "cka", "diverged"


@dataclass(frozen=True)
class CellPhase:
    phase: str
    confidence: float
    reason: str
    sharp_agreement: float = math.nan
    connected_agreement: float = math.nan
    cka_agreement: float = math.nan


def _fmt(value: float) -> str:
    return f"{value:.3g}"


def decide_cell(
    eigenvalue: Estimate,
    mode_connectivity: Estimate,
    cka: Estimate,
    diverged_fraction: float,
    *,
    sharpness_threshold: float,
    connectivity_threshold: float,
    cka_threshold: float,
    significance: float,
    min_samples: int,
) -> CellPhase:
    """The phase of one cell from its own estimates and the thresholds that apply to it."""
    if diverged_fraction > 0.5:
        return CellPhase("diverged", math.nan, f"diverged: {diverged_fraction:.0%} of the seeds' training runs")
    if not eigenvalue.known:
        return CellPhase("unknown", math.nan, "unknown: no Hessian top eigenvalue")
    if not math.isfinite(sharpness_threshold):
        return CellPhase("unknown", math.nan, "unknown: no sharpness threshold could be set")
    sharp = eigenvalue.mean > sharpness_threshold
    parts = [
        f"{'sharp' if sharp else 'flat'}: top eigenvalue {_fmt(eigenvalue.mean)} {'>' if sharp else '<='} {_fmt(sharpness_threshold)} (n={eigenvalue.count})"
    ]
    agreements = {"sharp_agreement": eigenvalue.replicate_agreement(sharpness_threshold)}
    counts = [("Hessian seeds", eigenvalue.count)]

    if not mode_connectivity.known:
        return CellPhase("unknown", math.nan, "unknown: " + "; ".join([*parts, "no mode connectivity"]), **agreements)
    floor = connectivity_threshold
    below_floor = mode_connectivity.mean < -floor
    p_value = mode_connectivity.p_below_zero()
    measured = f"mc {mode_connectivity.mean:+.3g} pp (n={mode_connectivity.count}"
    measured += f", p={p_value:.2g})" if math.isfinite(p_value) else ")"
    if below_floor and math.isfinite(p_value) and p_value >= significance:
        parts.append(f"undecided: {measured} is below -{_fmt(floor)} but not significantly below 0 at level {significance:g}")
        return CellPhase("unknown", math.nan, "unknown: " + "; ".join(parts), **agreements)
    connected = not below_floor
    parts.append(f"{'connected' if connected else 'barrier'}: {measured} {'>=' if connected else '<'} -{_fmt(floor)}")
    if connected:
        agreements["connected_agreement"] = mode_connectivity.replicate_agreement(-floor)
    else:
        # A replicate keeps "barrier" only if its barrier is also significant (else: unknown).
        agreements["connected_agreement"] = mode_connectivity.replicate_barrier(floor, significance)
    counts.append(("curves", mode_connectivity.count))

    if sharp:
        phase = "II" if connected else "I"
    elif not connected:
        phase = "III"
    else:
        if not cka.known:
            return CellPhase("unknown", math.nan, "unknown: " + "; ".join([*parts, "no CKA"]), **agreements)
        high = cka.mean >= cka_threshold
        parts.append(f"{'high' if high else 'low'} CKA: {cka.mean:.3g} {'>=' if high else '<'} {_fmt(cka_threshold)} (n={cka.count})")
        agreements["cka_agreement"] = cka.replicate_agreement(cka_threshold)
        counts.append(("CKA pairs", cka.count))
        phase = "IV-B" if high else "IV-A"

    thin = [f"{what}: {count}" for what, count in counts if count < min_samples]
    if thin:
        parts.append(f"thin evidence ({', '.join(thin)}; a confidence needs {min_samples})")
        confidence = math.nan
    else:
        confidence = float(np.prod([a for a in agreements.values() if math.isfinite(a)]))
    return CellPhase(phase, confidence, f"{phase}: " + "; ".join(parts), **agreements)


def _samples(variable: xr.DataArray, sample_dim: str) -> np.ndarray:
    """(cells, samples) array with the grid axes flattened in AXES order."""
    cells = math.prod(variable.sizes[axis] for axis in AXES)
    return variable.transpose(*AXES, sample_dim).values.reshape(cells, variable.sizes[sample_dim])


def _momentum(dataset: xr.Dataset) -> float:
    try:
        return float(json.loads(dataset.attrs["config"])["train"]["momentum"])
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(
            "sharpness_threshold 'stability' needs the SGD momentum (train.momentum) from the dataset's "
            "'config' attribute, which this dataset lacks; build it with `lltax merge` / `lltax aggregate`, "
            "or set classify.sharpness_threshold to a number"
        ) from e


# ---------------------------------------------------------------------------------------------
# classify


def _check_settings(settings: dict) -> dict:
    """The classify section: schema-checked, defaults from the schema, thresholds as floats."""
    s = section_settings("classify", settings, where="classify setting")
    for key in ("sharpness_threshold", "connectivity_threshold", "cka_threshold"):
        if not isinstance(s[key], str):
            s[key] = float(s[key])
    return s


def classify(dataset: xr.Dataset, **settings: Any) -> xr.Dataset:
    """Phases of every grid cell of a contract dataset.

    Parameters
    ----------
    dataset
        The merged dataset (``lltax.results``), with at least hessian_top_eigenvalue,
        mode_connectivity, cka and diverged, and the resolved config in ``attrs["config"]``
        (for the momentum of the stability limit).
    **settings
        The ``classify`` config section (module docstring; schema defaults for keys left out):
        ``sharpness_threshold`` ("stability", "grid" or an eigenvalue), ``sharpness_ratio``,
        ``connectivity_threshold`` (pp of training error, or "grid"), ``significance``,
        ``cka_threshold`` (or "grid"), ``min_samples``.

    Returns
    -------
    The input dataset plus ``<var>_mean``/``<var>_std`` per variable and, over the grid axes:
    ``phase`` (strings of PHASES), ``phase_confidence``, ``phase_reason``, the per-decision
    agreements, and ``sharpness_threshold`` (per cell); attributes hold the criteria and settings.
    """
    missing = [name for name in (EIGENVALUE, CONNECTIVITY, CKA, DIVERGED) if name not in dataset]
    if missing:
        raise ValueError(f"dataset lacks variables {missing}; build it with `lltax aggregate` / `lltax merge`")
    check_values(dataset, (EIGENVALUE, CONNECTIVITY, CKA, DIVERGED))
    s = _check_settings(settings)
    reductions = cell_reductions(dataset)
    grid_shape = tuple(dataset.sizes[axis] for axis in AXES)
    eigenvalues = [Estimate.of(row) for row in _samples(dataset[EIGENVALUE], "seed")]
    connectivity = [Estimate.of(row) for row in _samples(dataset[CONNECTIVITY], "pair")]
    ckas = [Estimate.of(row) for row in _samples(dataset[CKA], "pair")]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        diverged = np.nanmean(_samples(dataset[DIVERGED], "seed"), axis=1)
    alive = ~(diverged > 0.5)
    criteria = {}

    # Sharpness threshold per cell.
    learning_rate = xr.broadcast(dataset["learning_rate"], dataset[EIGENVALUE].isel(seed=0, drop=True))[0]
    learning_rate = learning_rate.transpose(*AXES).values.reshape(-1)
    if s["sharpness_threshold"] == "stability":
        momentum = _momentum(dataset)
        sharpness = s["sharpness_ratio"] * stability_limit(learning_rate, momentum)
        criteria["sharpness"] = (
            f"sharp: top eigenvalue > {s['sharpness_ratio']:g} x 2(1 + momentum)/learning_rate "
            f"(momentum {momentum:g}; the optimizer's stability limit)"
        )
    elif s["sharpness_threshold"] == "grid":
        means = np.array([e.mean for e in eigenvalues])
        value, note = grid_split(means[alive], log_scale=True, what="log10 cell-mean top eigenvalues")
        sharpness = np.full(len(eigenvalues), value)
        criteria["sharpness"] = f"sharp: top eigenvalue > {value:.3g} ({note})"
    else:
        sharpness = np.full(len(eigenvalues), s["sharpness_threshold"])
        criteria["sharpness"] = f"sharp: top eigenvalue > {s['sharpness_threshold']:g} (set)"

    if s["connectivity_threshold"] == "grid":
        barriers = -np.array([e.mean for e in connectivity])[alive]
        barriers = barriers[np.isfinite(barriers) & (barriers > 0)]
        if len(barriers):
            barriers = barriers[barriers > 1e-9 * barriers.max()]  # round-off of mc = 0 would drag the split
        floor, note = (
            grid_split(barriers, log_scale=True, what="log10 barrier heights -mc")
            if len(barriers)
            else (0.0, "grid: no barrier in the grid")
        )
    else:
        floor, note = s["connectivity_threshold"], "set"
    criteria["connectivity"] = (
        f"barrier: mc < -{floor:.3g} pp ({note}) and, with 2+ curves, significantly below 0 (one-sided t-test, level {s['significance']:g})"
    )

    # The CKA threshold only matters for flat, connected cells; "grid" splits over exactly those.
    if s["cka_threshold"] == "grid":
        decided = [
            decide_cell(
                e,
                m,
                c,
                d,
                sharpness_threshold=t,
                connectivity_threshold=floor,
                cka_threshold=0.0,
                significance=s["significance"],
                min_samples=s["min_samples"],
            ).phase
            for e, m, c, d, t in zip(eigenvalues, connectivity, ckas, diverged, sharpness)
        ]
        candidates = [c.mean for c, phase in zip(ckas, decided) if phase.startswith("IV")]
        cka_threshold, note = grid_split(np.array(candidates), log_scale=False, what="cell-mean CKA of the flat, connected cells")
    else:
        cka_threshold, note = s["cka_threshold"], "set"
    criteria["cka"] = f"IV-B: CKA >= {cka_threshold:.3g} ({note})"

    cells = [
        decide_cell(
            e,
            m,
            c,
            d,
            sharpness_threshold=t,
            connectivity_threshold=floor,
            cka_threshold=cka_threshold,
            significance=s["significance"],
            min_samples=s["min_samples"],
        )
        for e, m, c, d, t in zip(eigenvalues, connectivity, ckas, diverged, sharpness)
    ]

    grid_coords = {axis: dataset[axis] for axis in AXES}

    def grid_variable(values, long_name: str, units: str = "", dtype=None) -> xr.DataArray:
        array = np.asarray(values, dtype=dtype).reshape(grid_shape)
        return xr.DataArray(array, dims=AXES, coords=grid_coords, attrs={"units": units, "long_name": long_name})

    phases = dataset.copy()
    for name, variable in reductions.items():
        phases[name] = variable
    phases["phase"] = grid_variable([c.phase for c in cells], "loss-landscape phase (Yang et al. 2021)", dtype="<U8")
    phases["phase"].attrs["phase_values"] = " ".join(PHASES)
    phases["phase_confidence"] = grid_variable(
        [c.confidence for c in cells], "predicted probability that a replicate (new seeds, as many samples) gets the same phase", "1", float
    )
    phases["phase_reason"] = grid_variable([c.reason for c in cells], "the measurements and thresholds that gave the phase", dtype=str)
    phases["sharpness_threshold"] = grid_variable(sharpness, "top Hessian eigenvalue above which the cell is sharp", "1", float)
    # How far each measurement sits from its threshold, the closest decision, the paper's advice.
    for name, (values, long_name, units, dtype) in advice_variables(
        cells, eigenvalues, sharpness, connectivity, floor, ckas, cka_threshold
    ).items():
        phases[name] = grid_variable(values, long_name, units, dtype)
    for name, what in (("sharp", "sharp/flat"), ("connected", "barrier/connected"), ("cka", "IV-A/IV-B")):
        phases[f"{name}_agreement"] = grid_variable(
            [getattr(c, f"{name}_agreement") for c in cells],
            f"predicted probability that a replicate makes the same {what} decision",
            "1",
            float,
        )
    phases.attrs["connectivity_threshold"] = float(floor)
    phases.attrs["cka_threshold"] = float(cka_threshold)
    phases.attrs["criteria"] = json.dumps(criteria)
    phases.attrs["classify_settings"] = canonical_json(s)
    for name in ("sharpness", "connectivity", "cka"):
        if "grid:" in criteria[name] and "nan" in criteria[name].split(" (")[0]:
            log.warning("the grid-relative %s threshold could not be derived (%s); cells it decides are 'unknown'", name, criteria[name])
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

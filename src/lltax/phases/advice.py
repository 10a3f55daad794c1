"""The paper's advice per phase, as data (phases.nc ``advice``, ``advice_knob``, ``advice_source``).

Only where the paper gives advice: none for ``diverged`` or ``unknown`` cells.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Advice:
    """What the paper says a cell of a phase should change, and where it says it."""

    knob: str
    text: str
    source: str


# The paper's advice per phase, only where the paper gives one (none for diverged or unknown).
# Abstract: "the best test accuracy is obtained when: the loss landscape is globally
# well-connected; ensembles of trained models are more similar to each other; and models
# converge to locally smooth regions ... globally poorly-connected landscapes can arise when
# models are small or when they are trained to lower quality data; and ... if the loss landscape
# is globally poorly-connected, then training to zero loss can actually lead to worse test
# accuracy." Its conclusion reads the metrics as diagnoses: negative mode connectivity, low
# data quality or a small model; a large Hessian or large positive mode connectivity, training
# that has not reached the bottom of a minimum; small CKA with near-zero mc and a small Hessian,
# data that lacks signal.
POORLY_CONNECTED = (
    "mode connectivity is negative: the paper ties a poorly connected landscape to a model that is too small or to "
    "low-quality data (noisy labels); use a wider model or cleaner data. Here training to zero loss can lower test accuracy"
)
ADVICE = {
    "I": Advice(
        "model size or data quality",
        f"sharp and poorly connected: {POORLY_CONNECTED}; the large Hessian also says training has not reached the bottom of a minimum",
        "Yang et al. 2021, abstract and conclusion",
    ),
    "II": Advice(
        "training (not converged)",
        "sharp but well connected: a large Hessian (or a large positive mode connectivity) means training has not reached the "
        "bottom of a minimum; the endpoints are under-trained (typical at high temperature: small batch or large learning rate)",
        "Yang et al. 2021, conclusion and Table 1",
    ),
    "III": Advice(
        "model size or data quality", f"flat but poorly connected: {POORLY_CONNECTED}", "Yang et al. 2021, abstract and conclusion"
    ),
    "IV-A": Advice(
        "amount of data",
        "flat and well connected, but models of different seeds are dissimilar (low CKA): with near-zero mode connectivity and "
        "a small Hessian the paper reads this as data that lacks signal; get more data",
        "Yang et al. 2021, conclusion",
    ),
    "IV-B": Advice(
        "none",
        "flat, well connected and similar across seeds: the phase of the best test accuracy in the paper; nothing to change",
        "Yang et al. 2021, abstract",
    ),
}
DECISIONS = {"sharp": "sharp vs flat (Hessian)", "connected": "barrier vs connected (mode connectivity)", "cka": "IV-A vs IV-B (CKA)"}


def closest_decision(agreements: dict[str, float], confidence: float) -> tuple[str, float]:
    """The decision on a cell's path ({name: replicate agreement}) a replicate is least likely
    to repeat, and that probability ("" and NaN where no confidence was measured)."""
    measured = {name: value for name, value in agreements.items() if name in DECISIONS and math.isfinite(value)}
    if not measured or not math.isfinite(confidence):
        return "", math.nan
    name = min(measured, key=measured.get)
    return name, measured[name]


def advice_variables(cells, eigenvalues, sharpness, connectivity, floor: float, ckas, cka_threshold: float) -> dict[str, tuple]:
    """phases.nc's per-cell margins, closest decision and advice, as {name: (values, long_name,
    units, dtype)}, from the cells' ``CellPhase``, their ``Estimate``s and thresholds."""
    closest = [closest_decision({name: getattr(c, f"{name}_agreement") for name in DECISIONS}, c.confidence) for c in cells]
    advice = [ADVICE.get(c.phase) for c in cells]
    return {
        "sharp_margin": (
            [e.mean / t if math.isfinite(t) and t > 0 else math.nan for e, t in zip(eigenvalues, sharpness)],
            "cell-mean top Hessian eigenvalue / sharpness threshold (above 1: sharp)",
            "1",
            float,
        ),
        "connected_margin": (
            [m.mean + floor for m in connectivity],
            "cell-mean mode connectivity + barrier floor (below 0: barrier)",
            "%",
            float,
        ),
        "cka_margin": ([c.mean - cka_threshold for c in ckas], "cell-mean CKA - CKA threshold (at or above 0: IV-B)", "1", float),
        "closest_decision": (
            [name for name, _ in closest],
            "the decision a replicate is least likely to repeat (sharp, connected, cka; empty: no confidence measured)",
            "",
            str,
        ),
        "advice_knob": ([a.knob if a else "" for a in advice], "what the paper's advice for the phase would change", "", str),
        "advice": ([a.text if a else "" for a in advice], "the paper's advice for the cell's phase (empty: the paper gives none)", "", str),
        "advice_source": ([a.source if a else "" for a in advice], "where the paper gives the advice", "", str),
    }

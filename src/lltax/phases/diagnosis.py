"""The report of one cell: its phase, confidence and reason, each measurement against its
threshold, and the paper's advice (``lltax diagnose`` prints it; it reads phases.nc only)."""

from __future__ import annotations

import json
import math

import xarray as xr

from lltax.config.grid import cell_path
from lltax.contract import AXES
from lltax.phases.advice import DECISIONS


def _spread(phases: xr.Dataset, name: str, unit: str = "", digits: str = ".3g") -> str:
    mean, std = float(phases[f"{name}_mean"]), float(phases[f"{name}_std"])
    if not math.isfinite(mean):
        return "not measured"
    count = int(phases[name].notnull().sum())
    text = f"{mean:{digits}}{unit}"
    return text + (f" ± {std:.2g}{unit}" if math.isfinite(std) else "") + f" (n={count})"


def cell_report(phases: xr.Dataset, seeds: int) -> str:
    """The lines ``lltax diagnose`` prints for the one cell of ``phases`` (from ``lltax.phases.classify.classify``)."""
    cell = phases.squeeze([axis for axis in AXES], drop=False)
    coords = {axis: cell[axis].item() for axis in AXES}
    momentum = json.loads(phases.attrs["config"])["train"]["momentum"] if "config" in phases.attrs else math.nan
    lines = [f"cell {cell_path(coords)}: {seeds} checkpoint(s)"]
    confidence = float(cell["phase_confidence"])
    lines.append(
        f"phase {cell['phase'].item()}"
        + (f", confidence {confidence:.2f} (predicted probability that new seeds give the same phase)" if math.isfinite(confidence) else "")
    )
    lines.append(f"reason: {cell['phase_reason'].item()}")
    threshold, margin = float(cell["sharpness_threshold"]), float(cell["sharp_margin"])
    settings = json.loads(phases.attrs.get("classify_settings", "{}"))
    if settings.get("sharpness_threshold") == "stability":
        limit = f"{settings['sharpness_ratio']:g} x 2(1 + momentum {momentum:g}) / learning rate {coords['learning_rate']:g}: the stability limit"
    else:
        limit = "classify.sharpness_threshold"
    lines.append("measurements against thresholds:")
    lines.append(
        f"  top Hessian eigenvalue {_spread(cell, 'hessian_top_eigenvalue')}: sharp above {threshold:.3g} ({limit})"
        + (f"; {margin:.2g}x the threshold: {'sharp' if margin > 1 else 'flat'}" if math.isfinite(margin) else "")
    )
    floor = phases.attrs["connectivity_threshold"]
    lines.append(f"  mode connectivity {_spread(cell, 'mode_connectivity', ' pp')}: a barrier below -{floor:.3g} pp (and significant)")
    if "line_mode_connectivity_mean" in cell:
        lines.append(
            f"  beside the curve: the straight line's mc {_spread(cell, 'line_mode_connectivity', ' pp')}, after weight matching "
            f"{_spread(cell, 'aligned_line_mode_connectivity', ' pp')} (a barrier alignment removes is a permutation of hidden units)"
        )
    lines.append(f"  CKA {_spread(cell, 'cka')}: IV-B at or above {phases.attrs['cka_threshold']:.3g} (flat, connected cells)")
    lines.append(f"  accuracy: train {_spread(cell, 'train_acc', '%', '.4g')}, test {_spread(cell, 'test_acc', '%', '.4g')}")
    if seeds < 2:
        lines.append(
            "one checkpoint: only the local measurement (the Hessian, sharp or flat) is made; mode connectivity and CKA compare "
            "models of different seeds: give two or more checkpoints of the same setting for the phase"
        )
    closest = cell["closest_decision"].item()
    if closest:
        agreement = float(cell[f"{closest}_agreement"])
        lines.append(f"closest decision: {DECISIONS[closest]}, which a replicate repeats with probability {agreement:.2f}")
    advice = cell["advice"].item()
    lines.append(f"advice ({cell['advice_source'].item()}): {advice}" if advice else "advice: none (the paper gives none for this phase)")
    return "\n".join(lines)

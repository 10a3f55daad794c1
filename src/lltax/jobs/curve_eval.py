"""``lltax curve-eval``: loss and error along each fitted curve of a cell, and its mode connectivity."""

from __future__ import annotations

import argparse
import logging

from lltax.config.grid import canonical_value
from lltax.config.schema import parse_settings
from lltax.contract import CURVE_PROFILES, CURVE_SCALARS
from lltax.jobs.metric_inputs import build_from_meta, load_cell_data
from lltax.metrics.alignment import aligned_end
from lltax.metrics.curves import evaluate_curve
from lltax.runtime.device import resolve_device, runtime_info
from lltax.storage.atomic_files import one_output_each, write_json
from lltax.storage.checkpoint import load_curve

logger = logging.getLogger(__name__)

HELP = (
    "loss/error along fitted curves and the straight lines between their ends, mode connectivity of both; writes curve_eval.json per curve"
)
# The record's keys, as the dataset reads them (results.layout).
PROFILE_KEYS, SCALAR_KEYS = tuple(CURVE_PROFILES.values()), tuple(CURVE_SCALARS.values())
ALIGNED_KEYS = tuple(key for key in (*PROFILE_KEYS, *SCALAR_KEYS) if key.startswith("aligned_"))
ARGUMENTS = {
    "curves": {},
    "settings": {"help": "the config section 'curves' as JSON (uses points)"},
    "device": {},
    "data_dir": {},
    "out": {"help": "JSON file to write per curve, e.g. .../pair=0-1/curve_eval.json"},
}


def evaluate_curve_file(curve_path: str, points: list[float], device: str, data_dir: str | None, align: bool = True, seed: int = 0) -> dict:
    """The ``curve_eval.json`` record of one curve file at ``points``."""
    curve = load_curve(curve_path)
    meta = curve["meta"]
    result = {
        "seed_a": meta["seed_a"],
        "seed_b": meta["seed_b"],
        "cell": meta["endpoint"]["cell"],
        "checkpoints_sha256": meta.get("checkpoints_sha256"),
        "runtime": runtime_info(resolve_device(device)),
        # What it was computed with, compared with the config it is merged under (lltax.results.records).
        "settings": {"points": points, "align": align, "seed": seed},
        "fit_settings": meta["settings"],
    }
    if meta["diverged"]:
        logger.warning("curve %s is marked diverged; writing NaN results", curve_path)
        result["t"] = points
        result.update({key: [float("nan")] * len(points) for key in PROFILE_KEYS})
        result.update({key: float("nan") for key in SCALAR_KEYS})
    else:
        device = resolve_device(device)
        model = build_from_meta(meta["endpoint"])
        model.load_state_dict({**curve["bends"][0], **curve["buffers"]})
        model.to(device)
        bends = [{k: v.to(device) for k, v in bend.items()} for bend in curve["bends"]]
        data = load_cell_data(meta["endpoint"], device, data_dir)
        aligned_bends, permuted = None, None
        if "aligned_bends" in curve and not meta.get("aligned_diverged"):  # curves.fit_aligned
            aligned_bends = [{k: v.to(device) for k, v in bend.items()} for bend in curve["aligned_bends"]]
            permuted = aligned_bends[-1]  # the permuted model the aligned curve was fitted to
        elif align:
            permuted = aligned_end(model, bends[0], bends[-1], seed)
        # BatchNorm statistics are recomputed in batches of the fit's own batch size (the
        # reference's update_bn runs over the training loader), recorded in the curve file.
        result.update(
            evaluate_curve(
                model,
                bends,
                data.x_train,
                data.y_train,
                data.x_test,
                data.y_test,
                points=points,
                batch_size=meta["settings"]["batch_size"],
                aligned_end=permuted if align else None,
                aligned_bends=aligned_bends,
                curve=meta["settings"].get("curve", "bezier"),  # the fitted curve's own kind
            )
        )
    for key in ALIGNED_KEYS:  # not aligned (switched off, or an architecture without a rule): NaN
        result.setdefault(key, [float("nan")] * len(points) if key in PROFILE_KEYS else float("nan"))
    return result


def run(args: argparse.Namespace) -> int:
    settings = parse_settings(args.settings, "curves")
    points = sorted({canonical_value(float(t)) for t in settings["points"]})  # as the config spells curves.points
    for curve_path, out in one_output_each(args.curves, args.out, "curve"):  # a cell's curves in one process
        write_json(out, evaluate_curve_file(curve_path, points, args.device, args.data_dir, settings["align"], settings["seed"]))
    return 0

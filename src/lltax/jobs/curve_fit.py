"""``lltax curve-fit``: a Bezier curve (or PolyChain) between each pair of a cell's seeds, and with
``curves.fit_aligned`` a second one to the pair's end model permuted onto its start."""

from __future__ import annotations

import argparse
import logging

import torch

from lltax.config.schema import parse_settings
from lltax.jobs.metric_inputs import build_from_meta, check_same_cell, is_diverged, load_cell_data, load_model
from lltax.metrics.alignment import aligned_end
from lltax.metrics.bezier import initial_inner_bends, parameters_of
from lltax.metrics.curves import curve_epochs, fit_curve
from lltax.runtime.device import resolve_device, runtime_info
from lltax.storage.atomic_files import one_output_each
from lltax.storage.checkpoint import save_curve, versions

logger = logging.getLogger(__name__)

HELP = "fit Bezier curves (or PolyChains) between pairs of seeds' checkpoints; writes curve.pt per pair"
ARGUMENTS = {
    "checkpoints": {"metavar": "A B", "help": "model.pt of the two seeds of each pair (A = t=0, B = t=1), pairs in turn: A B [A B ...]"},
    "settings": {"help": "the config section 'curves' as JSON (the fitting keys)"},
    "device": {},
    "data_dir": {},
    "out": {"help": "curve file to write per pair, e.g. .../pair=0-1/curve.pt"},
}


def fit_curve_file(path_a: str, path_b: str, settings: dict, device: torch.device, data_dir: str | None, out: str) -> None:
    """Fit the curve between two checkpoints with the ``curves`` settings; write it to ``out``."""
    model, meta_a = load_model(path_a, device)
    model_b, meta_b = load_model(path_b, device)
    check_same_cell([meta_a, meta_b], [path_a, path_b])
    fit_keys = ("curve", "bends", "init", "epochs", "batch_size", "learning_rate", "momentum", "weight_decay", "weight_decay_form", "seed")
    settings = {**settings, "epochs": curve_epochs(settings["epochs"], settings["scale_epochs"], meta_a["cell"]["train_fraction"])}
    meta = {
        "endpoint": meta_a,
        "seed_a": meta_a["seed"],
        "seed_b": meta_b["seed"],
        "checkpoints_sha256": {str(meta_a["seed"]): meta_a.get("state_sha256"), str(meta_b["seed"]): meta_b.get("state_sha256")},
        "settings": {key: settings[key] for key in (*fit_keys, "fit_aligned")},
        "history": [],
        "diverged": False,
        "versions": versions(),
        "runtime": runtime_info(device),
    }
    if is_diverged(model, meta_a) or is_diverged(model_b, meta_b):
        logger.warning("an end model diverged (%s, %s); writing a diverged curve without fitting", path_a, path_b)
        save_curve(out, [], {}, {**meta, "diverged": True})
        return
    data = load_cell_data(meta_a, device, data_dir)
    start, end = parameters_of(model), parameters_of(model_b)
    logger.info(
        "fitting curve seed %s -> seed %s, %d bends, %d epochs, init %s",
        meta["seed_a"],
        meta["seed_b"],
        settings["bends"],
        settings["epochs"],
        settings["init"],
    )

    def fit(end: dict) -> tuple[list, list, bool]:
        inner = initial_inner_bends(
            start, end, settings["bends"] - 2, init=settings["init"], model_factory=lambda: build_from_meta(meta_a), seed=settings["seed"]
        )
        return fit_curve(
            model, start, end, inner, data.x_train, data.y_train, **{key: settings[key] for key in fit_keys if key not in ("init", "bends")}
        )

    bends, history, diverged = fit(end)
    # Wall-clock seconds stay in the log: the curve file is the same on a same-seed rerun.
    meta["history"] = [{k: v for k, v in record.items() if k != "seconds"} for record in history]
    meta["diverged"] = diverged
    aligned_bends = None
    if settings["fit_aligned"] and not diverged:
        permuted = aligned_end(model, start, end, seed=settings["seed"])
        if permuted is not None:
            logger.info("fitting the aligned curve: seed %s -> seed %s permuted onto it", meta["seed_a"], meta["seed_b"])
            aligned_bends, aligned_history, aligned_diverged = fit(permuted)
            meta["aligned_history"] = [{k: v for k, v in record.items() if k != "seconds"} for record in aligned_history]
            meta["aligned_diverged"] = aligned_diverged
    save_curve(out, bends, dict(model.named_buffers()), meta, aligned_bends)


def run(args: argparse.Namespace) -> int:
    settings = parse_settings(args.settings, "curves")
    device = resolve_device(args.device)
    if len(args.checkpoints) % 2:
        raise ValueError(f"--checkpoints takes pairs (A B A B ...), got {len(args.checkpoints)} path(s)")
    pairs = list(zip(args.checkpoints[0::2], args.checkpoints[1::2]))
    for (path_a, path_b), out in one_output_each(pairs, args.out, "checkpoint pair"):  # a cell's pairs in one process
        fit_curve_file(path_a, path_b, settings, device, args.data_dir, out)
    return 0

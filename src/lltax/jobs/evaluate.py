"""``lltax evaluate`` (by hand): eval-mode train/test loss and accuracy of checkpoints.

A diverged model gets NaN metrics (null in the JSON) and ``diverged: true``; the job succeeds.
The workflow takes these numbers from the training job's own final evaluation (train.json).
"""

from __future__ import annotations

import argparse
import logging
import math
from typing import Any

import torch

from lltax.config.schema import parse_settings
from lltax.jobs.metric_inputs import is_diverged, load_cell_data, load_model
from lltax.metrics.evaluate import evaluate_on_dataset, nan_metrics
from lltax.runtime.device import resolve_device
from lltax.storage import checkpoint
from lltax.storage.atomic_files import one_output_each, write_json

log = logging.getLogger(__name__)

HELP = "eval-mode train/test loss and accuracy of checkpoints"
ARGUMENTS = {
    "checkpoints": {},
    "settings": {"help": "the config section 'evaluate' as JSON (keys: batch_size)"},
    "device": {},
    "data_dir": {},
    "out": {"help": "output evaluate.json, one per checkpoint"},
}


def evaluate_checkpoint(
    path: str, batch_size: int = 1000, device: torch.device | str = "cpu", data_dir: str | None = None
) -> dict[str, Any]:
    """The ``evaluate.json`` record of one checkpoint (NaN metrics when diverged)."""
    model, meta = load_model(path, device)
    origin = checkpoint.provenance(meta, device)
    if is_diverged(model, meta):
        log.warning("%s is diverged: writing NaN metrics", path)
        return {**nan_metrics(), "diverged": True, **origin}
    dataset = load_cell_data(meta, device, data_dir)
    metrics = evaluate_on_dataset(model, dataset, batch_size)
    # A loss that overflows in eval mode is a diverged model too (DESIGN: NaN/inf loss).
    if not math.isfinite(metrics["train_loss"]):
        log.warning("%s has training loss %s in eval mode: recording it as diverged", path, metrics["train_loss"])
        return {**nan_metrics(), "diverged": True, **origin}
    log.info("%s: %s", path, ", ".join(f"{k}={v:.4g}" for k, v in metrics.items()))
    return {**metrics, "diverged": False, **origin}


def run(args: argparse.Namespace) -> int:
    settings = parse_settings(args.settings, "evaluate")
    device = resolve_device(args.device)
    for path, out in one_output_each(args.checkpoints, args.out, "checkpoint"):
        write_json(out, evaluate_checkpoint(path, settings["batch_size"], device, args.data_dir))
    return 0

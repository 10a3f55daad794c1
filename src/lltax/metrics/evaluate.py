"""Eval-mode loss and accuracy of one checkpoint on its cell's training and test data.

Training metrics use the cell's training labels, noisy ones included: that is the loss the
model was trained on and the one the paper's training-error axis reports (Yang et al. 2021).
A diverged model gets NaN metrics (null in the JSON) and ``diverged: true``; the job succeeds.
"""

from __future__ import annotations

import argparse
import logging
import math
from typing import Any

import torch
from torch import nn

from lltax import checkpoint
from lltax.config import parse_settings
from lltax.device import resolve_device
from lltax.evaluation import evaluate_model
from lltax.io import write_json

log = logging.getLogger(__name__)

METRIC_KEYS = ("train_loss", "train_acc", "test_loss", "test_acc")



def nan_metrics() -> dict[str, float]:
    return {key: math.nan for key in METRIC_KEYS}


def evaluate_on_dataset(model: nn.Module, dataset: Any, batch_size: int = 1000) -> dict[str, float]:
    """Eval-mode cross-entropy and accuracy (percent) on the training and the test set.

    ``dataset`` is an ``lltax.data.Dataset``; the training metrics use ``y_train`` (the cell's
    labels, noisy ones included), not ``y_train_clean``.
    """
    train_loss, train_acc = evaluate_model(model, dataset.x_train, dataset.y_train, batch_size)
    test_loss, test_acc = evaluate_model(model, dataset.x_test, dataset.y_test, batch_size)
    return {"train_loss": train_loss, "train_acc": train_acc, "test_loss": test_loss, "test_acc": test_acc}


def evaluate_checkpoint(path: str, batch_size: int = 1000, device: torch.device | str = "cpu", data_dir: str | None = None) -> dict[str, Any]:
    """The ``evaluate.json`` record of one checkpoint (NaN metrics when diverged)."""
    model, meta = checkpoint.load_model(path, device)
    origin = checkpoint.provenance(meta)
    if checkpoint.is_diverged(model, meta):
        log.warning("%s is diverged: writing NaN metrics", path)
        return {**nan_metrics(), "diverged": True, **origin}
    dataset = checkpoint.load_cell_data(meta, device, data_dir)
    metrics = evaluate_on_dataset(model, dataset, batch_size)
    # A loss that overflows in eval mode is a diverged model too (DESIGN: NaN/inf loss).
    if not math.isfinite(metrics["train_loss"]):
        log.warning("%s has training loss %s in eval mode: recording it as diverged", path, metrics["train_loss"])
        return {**nan_metrics(), "diverged": True, **origin}
    log.info("%s: %s", path, ", ".join(f"{k}={v:.4g}" for k, v in metrics.items()))
    return {**metrics, "diverged": False, **origin}


def _run_cli(args: argparse.Namespace) -> int:
    settings = parse_settings(args.settings, "evaluate")
    record = evaluate_checkpoint(args.checkpoint, settings["batch_size"], resolve_device(args.device), args.data_dir)
    write_json(args.out, record)
    return 0


def add_cli(subparsers) -> None:
    p = subparsers.add_parser("evaluate", help="eval-mode train/test loss and accuracy of one checkpoint")
    p.add_argument("--checkpoint", required=True, help="model checkpoint (<cell>/seed=S/model.pt)")
    p.add_argument("--settings", default="{}", help="the config section 'evaluate' as JSON (keys: batch_size)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="auto = cuda when available")
    p.add_argument("--data-dir", default=None, help="dataset folder (default: the one recorded in the checkpoint)")
    p.add_argument("--out", required=True, help="output evaluate.json")
    p.set_defaults(func=_run_cli)

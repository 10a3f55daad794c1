"""Eval-mode loss and accuracy of one checkpoint on its cell's training and test data.

Training metrics use the cell's training labels, noisy ones included: that is the loss the
model was trained on and the one the paper's training-error axis reports (Yang et al. 2021).
A diverged model gets NaN metrics (null in the JSON) and ``diverged: true``; the job succeeds.

This module also holds the small checkpoint-level helpers the pairwise metrics share
(``parse_settings``, ``is_diverged``, ``check_same_cell``).
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import math
from collections.abc import Sequence
from typing import Any

import jsonschema
import torch
from torch import nn

from lltax import checkpoint
from lltax.config import canonical_value, load_schema
from lltax.device import resolve_device
from lltax.evaluation import evaluate_model
from lltax.io import write_json

log = logging.getLogger(__name__)

METRIC_KEYS = ("train_loss", "train_acc", "test_loss", "test_acc")


# ---------------------------------------------------------------------------------------------
# Helpers shared by the checkpoint metrics (evaluate, cka, distance)


def parse_settings(text: str, section: str) -> dict[str, Any]:
    """A metric's config section from its ``--settings`` JSON, with schema defaults filled in.

    Values are checked against the section's schema; keys the schema does not know are
    ignored (each metric reads only the keys it uses).

    Raises
    ------
    ValueError
        The text is not a JSON object, or a value breaks the schema (the message names it).
    """
    try:
        settings = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"--settings is not valid JSON ({e}); pass the config section '{section}' as a JSON object, e.g. '{{}}' for its defaults") from e
    if not isinstance(settings, dict):
        raise ValueError(f"--settings must be a JSON object (the config section '{section}'), got {type(settings).__name__}")
    schema = copy.deepcopy(load_schema()["properties"][section])
    schema.pop("additionalProperties", None)
    for key, sub in schema.get("properties", {}).items():
        if "default" in sub:
            settings.setdefault(key, copy.deepcopy(sub["default"]))
    for error in jsonschema.Draft202012Validator(schema).iter_errors(settings):
        key = ".".join(str(p) for p in error.absolute_path)
        raise ValueError(f"--settings key '{section}.{key}': {error.message}")
    return settings


def is_diverged(model: nn.Module, meta: dict[str, Any]) -> bool:
    """True when training recorded divergence or any parameter or buffer is NaN/inf."""
    if meta.get("diverged", False):
        return True
    return any(t.is_floating_point() and not torch.isfinite(t).all() for t in model.state_dict().values())


def check_same_cell(metas: Sequence[dict[str, Any]], paths: Sequence[str]) -> None:
    """Raise ValueError unless all checkpoints come from one grid cell with distinct seeds."""

    def identity(meta: dict[str, Any]) -> dict[str, Any]:
        cell = {k: canonical_value(v) for k, v in meta["cell"].items()}
        return {"cell": cell, "model": meta["model"], "dataset": meta["dataset"]["name"]}

    first = identity(metas[0])
    for meta, path in zip(metas[1:], paths[1:]):
        other = identity(meta)
        if other != first:
            raise ValueError(
                f"checkpoints are not of the same grid cell: {paths[0]} is {first} but {path} is {other}; "
                "pass the seed checkpoints of one cell (<cell>/seed=*/model.pt)"
            )
    seeds = [meta["seed"] for meta in metas]
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"checkpoints {list(paths)} repeat a seed ({seeds}); pass each seed's checkpoint once")


# ---------------------------------------------------------------------------------------------
# Evaluation


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
    if is_diverged(model, meta):
        log.warning("%s is diverged: writing NaN metrics", path)
        return {**nan_metrics(), "diverged": True}
    dataset = checkpoint.load_cell_data(meta, device, data_dir)
    metrics = evaluate_on_dataset(model, dataset, batch_size)
    # A loss that overflows in eval mode is a diverged model too (DESIGN: NaN/inf loss).
    if not math.isfinite(metrics["train_loss"]):
        log.warning("%s has training loss %s in eval mode: recording it as diverged", path, metrics["train_loss"])
        return {**nan_metrics(), "diverged": True}
    log.info("%s: %s", path, ", ".join(f"{k}={v:.4g}" for k, v in metrics.items()))
    return {**metrics, "diverged": False}


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

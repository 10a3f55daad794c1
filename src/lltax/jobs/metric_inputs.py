"""What a metric job starts from: the model of a checkpoint, its cell's data, and checks that a
job's checkpoints belong together."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lltax.config.grid import canonical_value
from lltax.data.cells import load_dataset
from lltax.models import build_model
from lltax.storage.checkpoint import is_external_record, load_checkpoint_file

log = logging.getLogger(__name__)


def build_from_meta(meta: dict[str, Any]) -> nn.Module:
    return build_model(meta["model"], meta["width"], meta["num_classes"], tuple(meta["input_shape"]), meta.get("model_options"))


def load_model(path: str | Path, device: torch.device | str = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model of a checkpoint (a ``model.pt``, or the ``checkpoint.json`` of one trained
    elsewhere), load its weights, put it in eval mode on ``device``."""
    if is_external_record(path):
        from lltax.storage.foreign_checkpoints import load_external_record

        state, meta = load_external_record(path)
    else:
        state, meta = load_checkpoint_file(path)
    model = build_from_meta(meta)
    model.load_state_dict(state)
    return model.to(device).eval(), meta


def load_cell_data(meta: dict[str, Any], device: torch.device | str = "cpu", data_dir: str | None = None):
    """The training/test data of a checkpoint's cell (its label noise and train fraction)."""
    dataset = meta["dataset"]
    return load_dataset(
        dataset["name"],
        root=data_dir or dataset["root"],
        label_noise=meta["cell"]["label_noise"],
        train_fraction=meta["cell"]["train_fraction"],
        download=False,
        device=device,
        label_noise_mode=dataset.get("label_noise_mode", "exact"),
    )


def cell_models(paths: Sequence[str], device: torch.device | str = "cpu"):
    """The checkpoints of one cell's seeds in turn, as (model or None when diverged, metadata):
    one model in memory at a time; refused unless they are one cell's distinct seeds."""
    metas: list[dict[str, Any]] = []
    for path in paths:
        model, meta = load_model(path, device)
        metas.append(meta)
        check_same_cell(metas, paths[: len(metas)])
        if is_diverged(model, meta):
            log.warning("%s (seed %s) is diverged: its pairs get NaN", path, meta["seed"])
            model = None
        yield model, meta
        del model  # before the next checkpoint loads: one model in memory at a time


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

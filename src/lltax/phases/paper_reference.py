"""The paper's published ResNet18 / CIFAR-10 results as a dataset of the lltax contract.

``shared/reference/yang2021/`` (beside the repository) holds the per-seed results archive of
the reference implementation (nsfzyzz/loss_landscape_taxonomy) as CSV; see its README. This
module turns them into the schema ``lltax.results`` writes, so classification and plots can be
checked on real data no one here made.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from lltax.config.schema import validate_config
from lltax.contract import AXES, METRICS
from lltax.metrics.curves import mode_connectivity
from lltax.results.netcdf import merge_metrics
from lltax.results.tables import aggregate_metric

# The paper's setting, as far as the reference code and the data README say (Figure 3:
# 100 epochs, lr 0.1 with one x0.1 decay at epoch 75, weight decay 5e-4, 5 runs per cell).
FIXED_AXES = {"label_noise": 0.0, "train_fraction": 1.0, "learning_rate": 0.1, "weight_decay": 0.0005}
NUM_SEEDS = 5


def reference_dir() -> Path:
    """``shared/reference/yang2021`` beside the repository (repo/src/lltax/ -> repo/../shared)."""
    return Path(__file__).resolve().parents[4] / "shared" / "reference" / "yang2021"


def reference_config(widths: list[int], batch_sizes: list[int], points: list[float]) -> dict:
    """A resolved lltax config describing the paper's grid (for the dataset's attributes)."""
    return validate_config(
        {
            "experiment": "yang2021_resnet18_cifar10",
            "dataset": {"name": "cifar10"},
            "model": {"name": "resnet18"},
            "grid": {"width": widths, "batch_size": batch_sizes, **{k: [v] for k, v in FIXED_AXES.items()}},
            "seeds": NUM_SEEDS,
            "train": {"epochs": 100, "lr_schedule": "step", "lr_decay_at": 0.75, "lr_decay_factor": 0.1},
            "hessian": {"backend": "pyhessian", "num_samples": 200},
            "cka": {"output": "softmax", "num_samples": 768},
            "curves": {"pairs": "first", "points": points},
        }
    )


def _indexer(table: xr.Dataset, name: str, values: pd.Series) -> np.ndarray:
    positions = table.indexes[name].get_indexer(values)
    if (positions < 0).any():
        raise ValueError(f"reference CSV has {name} values {sorted(set(values[positions < 0]))} outside the grid")
    return positions


def _fill(table: xr.Dataset, frame: pd.DataFrame, columns: dict[str, str], sample: str, extra: str | None = None) -> None:
    """Write frame columns into table variables (dims AXES + sample [+ extra]) at their rows' positions."""
    position = (
        _indexer(table, "width", frame["width"]),
        _indexer(table, "batch_size", frame["batch_size"]),
        *([0] * (len(AXES) - 2)),  # the paper's other axes have one value each
        _indexer(table, sample, frame[sample]),
        *([_indexer(table, extra, frame[extra])] if extra else []),
    )
    for name, column in columns.items():
        assert table[name].dims == (*AXES, sample, *([extra] if extra else [])), table[name].dims
        table[name].data[position] = frame[column].to_numpy(dtype=np.float64)


def load_reference(directory: str | Path | None = None) -> xr.Dataset:
    """The paper's grid as a contract dataset (NaN where the archive has no value).

    - per model: losses, accuracies, Hessian top eigenvalue and trace; ``diverged`` = 0 where
      the training loss is finite (the archive records no divergence flag);
    - per pair: ``cka`` = the softmax CKA (what the paper uses) averaged over the two orders
      (a, b) and (b, a), which the reference code computes on different mixup draws;
      ``l2_distance``;
    - curves of the pair (0, 1): profiles, and ``mode_connectivity`` by its formula from the
      training error (``mode_connectivity_loss`` from the training loss).
    """
    directory = Path(directory) if directory is not None else reference_dir()
    if not directory.is_dir():
        raise FileNotFoundError(f"reference data folder {directory} does not exist (expected shared/reference/yang2021 beside the repo)")
    per_model = pd.read_csv(directory / "per_model.csv")
    per_pair = pd.read_csv(directory / "per_pair.csv")
    # Sorted by t within each curve: mode_connectivity reads e(0) and e(1) at the ends.
    curve = pd.read_csv(directory / "curve.csv").sort_values(["width", "batch_size", "seed_a", "seed_b", "t"])
    widths = sorted(int(w) for w in per_model["width"].unique())
    batch_sizes = sorted(int(b) for b in per_model["batch_size"].unique())
    config = reference_config(widths, batch_sizes, sorted(float(t) for t in curve["t"].unique()))
    tables = {metric: aggregate_metric(metric, None, config) for metric in METRICS}

    per_model = per_model.assign(diverged=np.where(np.isfinite(per_model["train_loss"]), 0.0, np.nan))
    columns = {name: name for name in ("diverged", "train_loss", "train_acc", "test_loss", "test_acc")}
    _fill(tables["train"], per_model, columns, "seed")
    _fill(tables["hessian"], per_model, {n: n for n in ("hessian_top_eigenvalue", "hessian_trace")}, "seed")

    unordered = per_pair.assign(seed_a=per_pair[["seed_a", "seed_b"]].min(axis=1), seed_b=per_pair[["seed_a", "seed_b"]].max(axis=1))
    unordered = unordered.groupby(["width", "batch_size", "seed_a", "seed_b"], as_index=False)[["cka_softmax", "l2_distance"]].mean()
    pair_of = {(int(a), int(b)): i for i, (a, b) in enumerate(zip(tables["cka"]["seed_a"].values, tables["cka"]["seed_b"].values))}
    unordered["pair"] = [pair_of[(a, b)] for a, b in zip(unordered["seed_a"], unordered["seed_b"])]
    _fill(tables["cka"], unordered, {"cka": "cka_softmax"}, "pair")
    _fill(tables["distance"], unordered, {"l2_distance": "l2_distance"}, "pair")

    # One row per (cell, pair, t); mode connectivity per (cell, pair) by its formula.
    profiles = {
        "curve_train_error": "train_err",
        "curve_train_loss": "train_nll",
        "curve_test_error": "test_err",
        "curve_test_loss": "test_nll",
    }
    curve["pair"] = [pair_of[(int(a), int(b))] for a, b in zip(curve["seed_a"], curve["seed_b"])]
    curves = tables["curves"]
    _fill(curves, curve, profiles, "pair", extra="t")
    scalars = curve.groupby(["width", "batch_size", "pair"], as_index=False).agg(
        mode_connectivity=("train_err", mode_connectivity), mode_connectivity_loss=("train_nll", mode_connectivity)
    )
    _fill(curves, scalars, {"mode_connectivity": "mode_connectivity", "mode_connectivity_loss": "mode_connectivity_loss"}, "pair")

    dataset = merge_metrics(list(tables.values()), config)
    dataset.attrs["source"] = f"published results of Yang et al. 2021 (nsfzyzz/loss_landscape_taxonomy), {directory.name}"
    return dataset

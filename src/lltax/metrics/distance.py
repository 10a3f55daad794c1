"""Euclidean distance between the trainable parameters of a cell's seeds.

Yang et al. 2021 report the l2 distance between the weights of models trained from
different seeds next to mode connectivity. Only trainable parameters count: BatchNorm running
statistics are buffers, estimates of the data rather than coordinates of the loss landscape.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import math

import torch
from torch import nn

from lltax import checkpoint
from lltax.device import resolve_device
from lltax.io import write_json
from lltax.checkpoint import check_same_cell, is_diverged
from lltax.config import parse_settings

log = logging.getLogger(__name__)


def trainable_parameters(model: nn.Module) -> dict[str, torch.Tensor]:
    return {name: p for name, p in model.named_parameters() if p.requires_grad}


@torch.no_grad()
def l2_distance(model_a: nn.Module, model_b: nn.Module) -> float:
    """``||theta_a - theta_b||_2`` over the trainable parameters, accumulated in float64.

    NaN when the distance is not finite (a diverged model).

    Raises
    ------
    ValueError
        The models do not have the same trainable parameter names and shapes.
    """
    params_a, params_b = trainable_parameters(model_a), trainable_parameters(model_b)
    if params_a.keys() != params_b.keys():
        only_a, only_b = sorted(params_a.keys() - params_b.keys()), sorted(params_b.keys() - params_a.keys())
        raise ValueError(f"models have different trainable parameters (only in a: {only_a}; only in b: {only_b}); compare models of one architecture")
    total = 0.0
    for name, a in params_a.items():
        b = params_b[name]
        if a.shape != b.shape:
            raise ValueError(f"parameter {name!r} has shape {tuple(a.shape)} in model a but {tuple(b.shape)} in model b; compare models of one width")
        total += (a.to(torch.float64) - b.to(device=a.device, dtype=torch.float64)).square().sum().item()
    distance = math.sqrt(total)
    return distance if math.isfinite(distance) else math.nan


def pairwise_distance(models: dict[int, nn.Module | None]) -> list[tuple[int, int, float]]:
    """l2 distance of every unordered pair of seeds (a < b); a None (diverged) model gives NaN."""
    pairs = []
    for a, b in itertools.combinations(sorted(models), 2):
        if models[a] is None or models[b] is None:
            pairs.append((a, b, math.nan))
        else:
            pairs.append((a, b, l2_distance(models[a], models[b])))
    return pairs


def distance_of_checkpoints(paths: list[str], device: torch.device | str = "cpu", metas: list | None = None) -> list[tuple[int, int, float]]:
    """Pairwise l2 distance of the seed checkpoints of one cell (``metas`` is filled with their metadata)."""
    metas = [] if metas is None else metas
    models = {}
    for path in paths:
        model, meta = checkpoint.load_model(path, device)
        metas.append(meta)
        check_same_cell(metas, paths[: len(metas)])
        if is_diverged(model, meta):
            log.warning("%s (seed %s) is diverged: its pairs get NaN", path, meta["seed"])
            model = None
        models[meta["seed"]] = model
    if len(models) < 2:
        log.warning("l2 distance needs at least two seeds; got %d checkpoint(s), writing no pairs", len(models))
    return pairwise_distance(models)


def write_distance(paths: list[str], out: str, device: torch.device | str = "cpu") -> None:
    """Write ``distance.json``: the pairwise l2 distances of a cell's seed checkpoints."""
    metas: list = []
    pairs = distance_of_checkpoints(paths, resolve_device(device), metas=metas)
    for a, b, value in pairs:
        log.info("seeds %d-%d: l2 distance %.6g", a, b, value)
    write_json(out, {"pairs": [{"seed_a": a, "seed_b": b, "l2_distance": value} for a, b, value in pairs], **checkpoint.cell_provenance(metas)})


def _run_cli(args: argparse.Namespace) -> int:
    parse_settings(args.settings, "distance")  # no settings yet; checked for uniformity
    write_distance(args.checkpoints, args.out, args.device)
    return 0


def add_cli(subparsers) -> None:
    p = subparsers.add_parser("distance", help="pairwise l2 distance between a cell's seeds' trainable parameters")
    p.add_argument("--checkpoints", nargs="+", required=True, help="the seed checkpoints of one cell")
    p.add_argument("--settings", default="{}", help="the config section 'distance' as JSON (no keys yet; accepted for uniformity)")
    p.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"], help="default cpu: no forward passes")
    p.add_argument("--out", required=True, help="output distance.json")
    p.set_defaults(func=_run_cli)

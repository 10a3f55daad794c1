"""``lltax distance``: pairwise l2 distance between a cell's seeds' trainable parameters (by
hand; the workflow's CKA job writes the same distance.json)."""

from __future__ import annotations

import argparse
import logging

import torch

from lltax.config.schema import parse_settings
from lltax.jobs.metric_inputs import cell_models
from lltax.metrics.distance import pairwise_distance
from lltax.runtime.device import resolve_device
from lltax.storage import checkpoint
from lltax.storage.atomic_files import write_json

log = logging.getLogger(__name__)

HELP = "pairwise l2 distance between a cell's seeds' trainable parameters"
ARGUMENTS = {
    "checkpoints": {"help": "the seed checkpoints of one cell"},
    "settings": {"help": "the config section 'distance' as JSON (no keys yet; accepted for uniformity)"},
    "device": {"default": "cpu", "help": "default cpu: no forward passes"},
    "out": {"nargs": None, "help": "output distance.json"},
}


def distance_of_checkpoints(
    paths: list[str], device: torch.device | str = "cpu", metas: list | None = None
) -> list[tuple[int, int, float]]:
    """Pairwise l2 distance of the seed checkpoints of one cell (``metas`` is filled with their metadata)."""
    metas = [] if metas is None else metas
    models = {}
    for model, meta in cell_models(paths, device):
        metas.append(meta)
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
    write_json(
        out,
        {
            "pairs": [{"seed_a": a, "seed_b": b, "l2_distance": value} for a, b, value in pairs],
            **checkpoint.cell_provenance(metas, resolve_device(device)),
        },
    )


def run(args: argparse.Namespace) -> int:
    parse_settings(args.settings, "distance")  # no settings yet; checked for uniformity
    write_distance(args.checkpoints, args.out, args.device)
    return 0

"""``lltax cka``: pairwise linear CKA of a cell's seeds on mixup inputs (and their l2 distances)."""

from __future__ import annotations

import argparse
import logging

import torch

from lltax.config.schema import parse_settings
from lltax.jobs.distance import write_distance
from lltax.jobs.metric_inputs import cell_models, load_cell_data
from lltax.metrics.cka import model_outputs, pairwise_cka
from lltax.metrics.mixup import mixup_batches, substituted_tokens
from lltax.runtime.device import resolve_device
from lltax.runtime.memory import DEFAULT_BUDGET_GB, GB, forward_batch, job_footprint
from lltax.storage import checkpoint
from lltax.storage.atomic_files import write_json

log = logging.getLogger(__name__)

HELP = "pairwise linear CKA of a cell's seeds on mixup inputs"
ARGUMENTS = {
    "checkpoints": {"help": "the seed checkpoints of one cell"},
    "settings": {"help": "the config section 'cka' as JSON (output, num_samples, mixup_alpha, batch_size, seed)"},
    "device": {},
    "data_dir": {},
    "memory_budget_gb": {},
    "out": {"nargs": None, "help": "output cka.json"},
    "distance_out": {"help": "also write the seeds' pairwise l2 distances here (distance.json, as `lltax distance`)"},
}


def cka_of_checkpoints(
    paths: list[str],
    settings: dict,
    device: torch.device | str = "cpu",
    data_dir: str | None = None,
    metas: list | None = None,
    memory_budget_gb: float = DEFAULT_BUDGET_GB,
) -> list[tuple[int, int, float]]:
    """Pairwise CKA of the seed checkpoints of one cell, with the ``cka`` config section.

    Checkpoints are loaded and forwarded one at a time (one model in memory at once); the
    mixup inputs come from the cell's training set, loaded once. Forward passes take
    ``batch_size`` inputs, fewer if their activations do not fit ``memory_budget_gb``.
    """
    metas = [] if metas is None else metas  # filled with the checkpoints' metadata, for the caller's provenance
    outputs, inputs = {}, None
    for model, meta in cell_models(paths, device):
        metas.append(meta)
        if model is None:
            outputs[meta["seed"]] = None
            continue
        if inputs is None:
            dataset = load_cell_data(meta, device, data_dir)
            if dataset.task == "seq2seq":  # token ids cannot be mixed: random words instead (metrics/mixup.py)
                fraction = settings["token_substitution"]
                inputs = substituted_tokens(dataset.x_train, settings["num_samples"], fraction, dataset.num_classes, settings["seed"])
                log.info("%d translation pairs, source words substituted at rate %s (seed %s)", len(inputs), fraction, settings["seed"])
            else:
                inputs = mixup_batches(
                    dataset.x_train, settings["num_samples"], settings["batch_size"], settings["mixup_alpha"], settings["seed"]
                )
                log.info("%d mixup inputs (alpha=%s, seed=%s)", len(inputs), settings["mixup_alpha"], settings["seed"])
        _, activations, held = job_footprint(model, meta, dataset)
        batch = forward_batch(memory_budget_gb * GB, activations, held=held + inputs.nbytes, batch_size=settings["batch_size"])
        outputs[meta["seed"]] = model_outputs(model, inputs, settings["output"], batch)
        del model
    if len(outputs) < 2:
        log.warning("CKA needs at least two seeds; got %d checkpoint(s), writing no pairs", len(outputs))
    return pairwise_cka(outputs)


def run(args: argparse.Namespace) -> int:
    settings = parse_settings(args.settings, "cka")
    metas: list = []
    pairs = cka_of_checkpoints(args.checkpoints, settings, resolve_device(args.device), args.data_dir, metas, args.memory_budget_gb)
    for a, b, value in pairs:
        log.info("seeds %d-%d: CKA %.6g", a, b, value)
    write_json(
        args.out,
        {
            "pairs": [{"seed_a": a, "seed_b": b, "cka": value} for a, b, value in pairs],
            "settings": settings,  # compared with the config it is merged under (lltax.results.records)
            **checkpoint.cell_provenance(metas, resolve_device(args.device)),
        },
    )
    if args.distance_out:  # the same checkpoints' l2 distances, without a process of their own
        write_distance(args.checkpoints, args.distance_out, "cpu")
    return 0

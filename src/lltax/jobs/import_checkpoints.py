"""``lltax import``: one cell's checkpoints trained elsewhere -> checkpoint.json + train.json per seed.

In place of ``lltax train`` for a cell whose models exist already (config ``checkpoints.path``):
each file is read weights-only, fitted to the model (``lltax.storage.foreign_checkpoints``), evaluated as the
training job evaluates its own models (eval mode, the cell's training labels and the test
set), and recorded. The files themselves are neither modified nor copied.
"""

from __future__ import annotations

import argparse
import logging
import math
from pathlib import Path

import torch

from lltax.config.grid import canonical_json, config_hash
from lltax.config.schema import parse_cell, parse_model, parse_settings
from lltax.contract import EXTERNAL_RECORD, TRAIN_RECORD
from lltax.data.cells import load_dataset
from lltax.metrics.bleu import translation_scores
from lltax.metrics.evaluate import evaluate_model
from lltax.models import build_model
from lltax.runtime.device import resolve_device, runtime_info
from lltax.storage.atomic_files import one_output_each, write_json
from lltax.storage.checkpoint import save_external_record, state_checksum, versions
from lltax.storage.foreign_checkpoints import (
    CheckpointError,
    duplicate_files,
    file_checksum,
    file_stat,
    filled_names,
    fit_state,
    read_payload,
    state_of_payload,
)

log = logging.getLogger(__name__)

HELP = "record one cell's checkpoints trained elsewhere (one file per seed) for the metric jobs; writes checkpoint.json and train.json per seed"
ARGUMENTS = {
    "cell": {},
    "seeds": {"help": "the seed (replicate) each file is, in the order of --files"},
    "files": {},
    "dataset_settings": {},
    "model": {"help": 'model.name, or the config section \'model\' as JSON when it has options ({"name": ..., "options": {...}})'},
    "settings": {"required": True, "help": "the config section 'train' as JSON (momentum and eval_batch_size apply)"},
    "checkpoint_settings": {},
    "data_dir": {"default": "data", "help": "dataset folder"},
    "device": {},
    "out_dir": {"help": "folder for checkpoint.json and train.json, one per seed"},
}


def import_checkpoint(
    *,
    file: str,
    cell: dict,
    seed: int,
    data,
    dataset: dict,
    model_name: str,
    train_settings: dict,
    formats: dict,
    data_dir: str,
    device: torch.device,
    out_dir: str | Path,
    model_options: dict | None = None,
) -> dict:
    """Check one foreign checkpoint against its model and write its ``checkpoint.json`` and ``train.json``."""
    path = str(Path(file).resolve())
    torch.manual_seed(seed)  # whatever the builder draws is overwritten; lazy modules still see one stream
    model = build_model(model_name, cell["width"], data.num_classes, data.input_shape, model_options)
    raw, key = state_of_payload(read_payload(path), path, formats["key"])
    state, prefix = fit_state(raw, model, path, formats["prefix"])
    model.load_state_dict(state)
    model.to(device).eval()
    stat = file_stat(path)
    external = {
        "path": path,
        "file_sha256": file_checksum(path),
        "file_stat": stat,
        "key": key,
        "prefix": prefix,
        "filled": filled_names(raw, state, prefix),
    }
    if file_stat(path) != stat:
        raise CheckpointError(f"{path} changed while it was read; import it again once it is written")
    log.info("%s: %d tensors under key %r, prefix %r, for cell %s seed %d", path, len(state), key, prefix, canonical_json(cell), seed)

    batch = train_settings["eval_batch_size"]
    train_loss, train_acc = evaluate_model(model, data.x_train, data.y_train, batch)
    test_loss, test_acc = evaluate_model(model, data.x_test, data.y_test, batch)
    diverged = not math.isfinite(train_loss)  # finite weights, overflowing loss: diverged (DESIGN)
    nan = float("nan")
    final = (
        {"train_loss": nan, "train_acc": nan, "test_loss": nan, "test_acc": nan}
        if diverged
        else {"train_loss": train_loss, "train_acc": train_acc, "test_loss": test_loss, "test_acc": test_acc}
    )
    log.info("%s (eval mode): train loss %.4g acc %.2f%%, test loss %.4g acc %.2f%%", path, train_loss, train_acc, test_loss, test_acc)
    bleu, bleu_signature = translation_scores(model, data, batch, finite=not diverged)  # translation: BLEU of greedy decoding
    final.update(bleu)
    provenance = {"cell": cell, "seed": seed, "dataset": dataset, "model": model_name, "train": train_settings, "external": external}
    if model_options:  # only when given, as the train job: the hashes of imports without options stay as they were
        provenance["model_options"] = model_options
    meta = {
        "model": model_name,
        **({"model_options": model_options} if model_options else {}),
        "width": cell["width"],
        "num_classes": data.num_classes,
        "input_shape": list(data.input_shape),
        "dataset": {**dataset, "root": str(data_dir)},
        "cell": cell,
        "seed": seed,
        "train": train_settings,
        "diverged": diverged,
        "checkpoint_epoch": None,
        "config_hash": config_hash({**provenance, "state_sha256": state_checksum(state)}),
        "external": external,
        "versions": versions(),
        "runtime": runtime_info(),
    }
    out_dir = Path(out_dir)
    save_external_record(out_dir / EXTERNAL_RECORD, state, meta)
    summary = {
        "cell": cell,
        "seed": seed,
        "diverged": diverged,
        "epochs_run": None,  # trained elsewhere: what lltax did not see, it does not claim
        "checkpoint_epoch": None,
        "final": final,
        "history": [],
        "wall_time_s": None,
        "config_hash": meta["config_hash"],
        "external": external,
        "runtime": meta["runtime"],
        **({"bleu_signature": bleu_signature} if bleu_signature else {}),
    }
    write_json(out_dir / TRAIN_RECORD, summary)
    return summary


def import_checkpoints(
    *, cell: dict, seeds: list[int], files: list[str], out_dirs: list[str | Path], dataset: dict, data_dir: str, device: str, **job
) -> list[dict]:
    """Record the seeds of one cell in turn; the cell's data is loaded once."""
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"each seed once: got seeds {seeds}")
    if len(files) != len(seeds):
        raise ValueError(f"one checkpoint file per seed: got {len(files)} files for seeds {seeds}")
    same = duplicate_files(files)
    if same:
        first, second = same[0]
        raise CheckpointError(
            f"checkpoints {first} and {second} (seeds {seeds[[str(f) for f in files].index(first)]} and "
            f"{seeds[[str(f) for f in files].index(second)]}) are the same file or have the same content: each seed of a cell must "
            "be a model of its own (check checkpoints.path or --files)"
        )
    torch_device = resolve_device(device)
    data = load_dataset(
        dataset["name"],
        root=data_dir,
        label_noise=cell["label_noise"],
        train_fraction=cell["train_fraction"],
        download=dataset.get("download", False),
        device=torch_device,
        label_noise_mode=dataset.get("label_noise_mode", "exact"),
    )
    runs = one_output_each(list(zip(seeds, files)), out_dirs, "seed")
    return [
        import_checkpoint(
            file=file, cell=cell, seed=seed, data=data, dataset=dataset, data_dir=data_dir, device=torch_device, out_dir=out, **job
        )
        for (seed, file), out in runs
    ]


def run(args: argparse.Namespace) -> int:
    model_name, model_options = parse_model(args.model)
    import_checkpoints(
        cell=parse_cell(args.cell),
        seeds=args.seeds,
        files=args.files,
        out_dirs=args.out_dir,
        dataset=parse_settings(args.dataset_settings, "dataset"),
        model_name=model_name,
        model_options=model_options,
        train_settings=parse_settings(args.settings, "train"),
        formats=parse_settings(args.checkpoint_settings, "checkpoints"),
        data_dir=args.data_dir,
        device=args.device,
    )
    return 0

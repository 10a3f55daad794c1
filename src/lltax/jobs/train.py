"""``lltax train``: one grid cell's seeds in turn -> model.pt + train.json per seed."""

from __future__ import annotations

import argparse
import logging
import math
import time
from pathlib import Path

import torch

from lltax.config.grid import canonical_json, config_hash
from lltax.config.schema import parse_cell, parse_model, parse_settings
from lltax.contract import MODEL_FILE, SNAPSHOT_FILE, TRAIN_RECORD
from lltax.data.cells import load_dataset, poison_set
from lltax.metrics.bleu import translation_scores
from lltax.metrics.evaluate import evaluate_model
from lltax.models import build_model
from lltax.runtime.device import resolve_device, runtime_info
from lltax.storage.atomic_files import one_output_each, write_json
from lltax.storage.checkpoint import save_checkpoint, versions
from lltax.training.loop import train_model

log = logging.getLogger(__name__)

HELP = "train one grid cell's seeds in turn; writes model.pt and train.json per seed"
ARGUMENTS = {
    "cell": {},
    "seeds": {},
    "dataset_settings": {"help": 'the config section \'dataset\' as JSON, e.g. {"name": "mnist1d", "download": false, "augment": false}'},
    "model": {"help": 'model.name, or the config section \'model\' as JSON when it has options ({"name": ..., "options": {...}})'},
    "settings": {"required": True, "help": "the config section 'train' as JSON"},
    "data_dir": {"default": "data", "help": "dataset folder"},
    "device": {},
    "out_dir": {"help": "folder for model.pt and train.json, one per seed"},
}


def run_train_job(
    *,
    cell: dict,
    seed: int,
    dataset: dict,
    model_name: str,
    train_settings: dict,
    model_options: dict | None = None,
    data_dir: str,
    device: str,
    out_dir: str | Path,
    keep_snapshot: bool = False,
) -> dict:
    """Train one model and write ``model.pt`` and ``train.json`` (both atomically) to ``out_dir``.

    ``keep_snapshot`` leaves the last epoch's snapshot in place (the caller removes it): a job
    that trains several seeds in turn keeps every finished seed's snapshot until all are done,
    so a rerun after a kill (which deletes all of the job's outputs) restores finished seeds
    from it instead of training them again, with the same bytes.
    """
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
    # Huang et al.'s bad minima: a poisoned set trained on beside the cell's data, never measured on.
    x_fit, y_fit = data.x_train, data.y_train
    if train_settings.get("poison", 0):
        x_poison, y_poison = poison_set(
            dataset["name"], data_dir, train_settings["poison"], cell["train_fraction"], dataset.get("download", False), torch_device
        )
        x_fit, y_fit = torch.cat([data.x_train, x_poison]), torch.cat([data.y_train, y_poison])
    torch.manual_seed(seed)  # model initialisation
    model_options = model_options or {}
    model = build_model(model_name, cell["width"], data.num_classes, data.input_shape, model_options).to(torch_device)
    log.info(
        "training %s width=%d (%d parameters) on %s, %d samples, cell %s, seed %d, device %s",
        model_name,
        cell["width"],
        sum(p.numel() for p in model.parameters()),
        dataset["name"],
        len(data.x_train),
        canonical_json(cell),
        seed,
        torch_device,
    )

    provenance = {"cell": cell, "seed": seed, "dataset": dataset, "model": model_name, "train": train_settings}
    if model_options:  # only when given: the hashes of every run without options stay as they were
        provenance["model_options"] = model_options
    out_dir = Path(out_dir)
    snapshot = out_dir / SNAPSHOT_FILE  # not an output: a killed job leaves it for the rerun to resume from
    start = time.perf_counter()
    result = train_model(
        model,
        x_fit,
        y_fit,
        batch_size=cell["batch_size"],
        learning_rate=cell["learning_rate"],
        weight_decay=cell["weight_decay"],
        epochs=train_settings["epochs"],
        momentum=train_settings["momentum"],
        lr_schedule=train_settings["lr_schedule"],
        lr_decay_at=train_settings["lr_decay_at"],
        lr_decay_factor=train_settings["lr_decay_factor"],
        checkpoint=train_settings["checkpoint"],
        patience=train_settings["patience"],
        min_delta=train_settings["min_delta"],
        augment=dataset.get("augment", False),
        seed=seed,
        snapshot=snapshot,
        snapshot_key=config_hash({**provenance, "device": str(torch_device)}),
        snapshot_minutes=train_settings["snapshot_minutes"],
        trajectory=train_settings["trajectory"],
        precision=train_settings["precision"],
        channels_last=train_settings["channels_last"],
        compile=train_settings["compile"],
        label_smoothing=train_settings["label_smoothing"],
    )
    wall_time = time.perf_counter() - start

    # The cell's loss and accuracy (the dataset's train_/test_ variables): the checkpointed
    # model in eval mode, on the cell's training labels and the test set.
    nan = float("nan")
    final = {"train_loss": nan, "train_acc": nan, "test_loss": nan, "test_acc": nan}
    bleu_signature = None
    if not result.diverged:
        batch = train_settings["eval_batch_size"]
        train_loss, train_acc = evaluate_model(model, data.x_train, data.y_train, batch)
        test_loss, test_acc = evaluate_model(model, data.x_test, data.y_test, batch)
        if math.isfinite(train_loss):
            final = {"train_loss": train_loss, "train_acc": train_acc, "test_loss": test_loss, "test_acc": test_acc}
            bleu, bleu_signature = translation_scores(model, data, batch)  # translation: BLEU of greedy decoding
            final.update(bleu)
            if bleu:
                log.info("test BLEU of greedy decoding %.2f (%s)", bleu["test_bleu"], bleu_signature)
            if len(x_fit) > len(data.x_train):  # how well the poisoned set was fitted (the cell's numbers are clean)
                poison_loss, poison_acc = evaluate_model(model, x_fit[len(data.x_train) :], y_fit[len(data.x_train) :], batch)
                final["poison"] = {"count": len(x_fit) - len(data.x_train), "loss": poison_loss, "acc": poison_acc}
                log.info("poisoned set (eval mode): loss %.4f acc %.2f%%", poison_loss, poison_acc)
            log.info("final (eval mode): train loss %.4f acc %.2f%%, test loss %.4f acc %.2f%%", train_loss, train_acc, test_loss, test_acc)
        else:  # finite in train mode, overflowing in eval mode: a diverged model too (DESIGN)
            log.warning("training loss is %s in eval mode: recording the run as diverged", train_loss)
            result.diverged = True
    if result.diverged:
        final.update(translation_scores(model, data, finite=False)[0])

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
        "diverged": result.diverged,
        "checkpoint_epoch": result.checkpoint_epoch,
        "config_hash": config_hash(provenance),
        "versions": versions(),
        "runtime": runtime_info(torch_device, precision=train_settings["precision"]),
    }
    save_checkpoint(out_dir / MODEL_FILE, model, meta, trajectory=result.trajectory)
    summary = {
        "cell": cell,
        "seed": seed,
        "diverged": result.diverged,
        "epochs_run": len(result.history),
        "checkpoint_epoch": result.checkpoint_epoch,
        "final": final,
        "history": result.history,
        "wall_time_s": wall_time,
        "config_hash": meta["config_hash"],
        "runtime": meta["runtime"],
        **({"bleu_signature": bleu_signature} if bleu_signature else {}),
    }
    write_json(out_dir / TRAIN_RECORD, summary)
    if not keep_snapshot:
        snapshot.unlink(missing_ok=True)  # the checkpoint is final
    return summary


def run_train_jobs(*, seeds: list[int], out_dirs: list[str | Path], **job) -> list[dict]:
    """Train the seeds of one cell in turn, one process (``run_train_job`` per seed, same files).

    One process per cell instead of per seed: the seeds share the process start-up and
    imports (~2 s), which is most of a small model's training job.
    """
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"each seed once: got seeds {seeds}")
    runs = one_output_each(seeds, out_dirs, "seed")
    summaries = [run_train_job(seed=seed, out_dir=out_dir, keep_snapshot=True, **job) for seed, out_dir in runs]
    for out_dir in out_dirs:
        (Path(out_dir) / SNAPSHOT_FILE).unlink(missing_ok=True)  # every checkpoint of the cell is final
    return summaries


def run(args: argparse.Namespace) -> int:
    model_name, model_options = parse_model(args.model)
    run_train_jobs(
        cell=parse_cell(args.cell),  # each value in its schema range, as in a config
        seeds=args.seeds,
        dataset=parse_settings(args.dataset_settings, "dataset"),  # schema-checked: a typo is an error, not a default
        model_name=model_name,
        model_options=model_options,
        train_settings=parse_settings(args.settings, "train"),
        data_dir=args.data_dir,
        device=args.device,
        out_dirs=args.out_dir,
    )
    return 0

"""Training: SGD with momentum on one grid cell and seed, data as tensors on the device.

One function, read top to bottom (nanoGPT / airbench style): no trainer object, no callbacks.
A run whose loss turns NaN/inf stops and is recorded as diverged; the job still succeeds so
the grid goes on (DESIGN.md, "Rules of the house").
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from lltax.sgd import SGD

log = logging.getLogger(__name__)


SNAPSHOT_FILE = "train_snapshot.pt"


@dataclass
class TrainResult:
    model: nn.Module  # the checkpointed model: final, or the lowest-training-loss epoch
    history: list[dict] = field(default_factory=list)
    diverged: bool = False
    checkpoint_epoch: int = 0


def learning_rate_at(epoch: int, *, learning_rate: float, epochs: int, lr_schedule: str, lr_decay_at: float, lr_decay_factor: float) -> float:
    """Constant, or one step decay after ``lr_decay_at`` of the epochs (Yang et al.'s Figure 3 setting)."""
    # epoch counts from 0; the comparison is on the unrounded product, as the reference code.
    if lr_schedule == "step" and epoch >= lr_decay_at * epochs:
        return learning_rate * lr_decay_factor
    return learning_rate


def train_model(
    model: nn.Module,
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    *,
    batch_size: int,
    learning_rate: float,
    weight_decay: float,
    epochs: int,
    momentum: float = 0.9,
    lr_schedule: str = "constant",
    lr_decay_at: float = 0.75,
    lr_decay_factor: float = 0.1,
    checkpoint: str = "final",
    patience: int = 5,
    min_delta: float = 1e-4,
    augment=None,
    seed: int = 0,
    snapshot: str | Path | None = None,
    snapshot_key: str = "",
) -> TrainResult:
    """Train ``model`` in place with minibatch SGD; the last partial batch of each epoch is dropped.

    ``checkpoint``: "final", "best_train_loss" (the lowest-loss epoch's model), or
    "early_stopping": stop after ``patience`` epochs whose training loss did not improve on the
    best by more than ``min_delta``, and keep the last improving epoch's model.
    ``augment`` is an optional function ``(batch, generator) -> batch``. The batch order and
    augmentation draw from one CPU generator seeded with ``seed``, so a CPU run is bit-reproducible.

    ``snapshot``: a file written (atomically) after every epoch with everything the loop
    carries: model and optimizer state, the generator's state, the history and the best-model
    bookkeeping. If it exists when training starts and its ``snapshot_key`` (a hash of what
    defines the run) matches, training resumes after its epoch, and ends byte-identical to an
    uninterrupted run on CPU (a preempted cluster job loses at most one epoch). A snapshot of
    another run is ignored. The caller removes it once the final checkpoint is written.
    """
    num_samples = len(x_train)
    steps_per_epoch = num_samples // batch_size
    if steps_per_epoch == 0:
        raise ValueError(f"batch_size {batch_size} is larger than the training set ({num_samples} samples); lower grid.batch_size or raise grid.train_fraction")
    generator = torch.Generator().manual_seed(seed)
    optimizer = SGD(model.parameters(), lr=learning_rate, momentum=momentum, weight_decay=weight_decay)
    schedule = dict(learning_rate=learning_rate, epochs=epochs, lr_schedule=lr_schedule, lr_decay_at=lr_decay_at, lr_decay_factor=lr_decay_factor)
    result = TrainResult(model=model)
    best_loss, best_state, stale_epochs = math.inf, None, 0
    first_epoch = 0
    state = load_snapshot(snapshot, snapshot_key) if snapshot is not None else None
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        generator.set_state(state["generator"])
        result.history, result.checkpoint_epoch = state["history"], state["checkpoint_epoch"]
        best_loss, best_state, stale_epochs = state["best_loss"], state["best_state"], state["stale_epochs"]
        first_epoch = state["epoch"]
        log.info("resuming from the snapshot after epoch %d of %d (%s)", first_epoch, epochs, snapshot)

    for epoch in range(first_epoch, epochs):
        start = time.perf_counter()
        lr = learning_rate_at(epoch, **schedule)
        optimizer.lr = lr
        model.train()
        order = torch.randperm(num_samples, generator=generator).to(x_train.device)
        # Accumulate on the device; one .item() per epoch keeps GPU runs free of per-step syncs.
        loss_sum = torch.zeros((), device=x_train.device)
        correct = torch.zeros((), device=x_train.device, dtype=torch.long)
        for step in range(steps_per_epoch):
            index = order[step * batch_size : (step + 1) * batch_size]
            inputs, targets = x_train[index], y_train[index]
            if augment is not None:
                inputs = augment(inputs, generator)
            logits = model(inputs)
            loss = F.cross_entropy(logits, targets)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            loss_sum += loss.detach()
            correct += (logits.detach().argmax(dim=1) == targets).sum()
        epoch_loss = loss_sum.item() / steps_per_epoch
        epoch_acc = 100.0 * correct.item() / (steps_per_epoch * batch_size)
        seconds = time.perf_counter() - start
        result.history.append({"epoch": epoch + 1, "train_loss": epoch_loss, "train_acc": epoch_acc, "lr": lr, "seconds": seconds})
        log.info("epoch %d/%d  loss %.4f  acc %.2f%%  lr %.3g  %.2fs", epoch + 1, epochs, epoch_loss, epoch_acc, lr, seconds)
        if not math.isfinite(epoch_loss):
            log.warning("training loss is %s at epoch %d: recording the run as diverged", epoch_loss, epoch + 1)
            result.diverged = True
            break
        if checkpoint == "best_train_loss" and epoch_loss < best_loss:
            best_loss, best_state = epoch_loss, copy.deepcopy(model.state_dict())
            result.checkpoint_epoch = epoch + 1
        if checkpoint == "early_stopping":
            if epoch_loss < best_loss - min_delta:
                best_loss, best_state, stale_epochs = epoch_loss, copy.deepcopy(model.state_dict()), 0
                result.checkpoint_epoch = epoch + 1
            else:
                stale_epochs += 1
                if stale_epochs >= patience:
                    log.info("early stopping at epoch %d: no improvement > %g for %d epochs; keeping epoch %d", epoch + 1, min_delta, patience, result.checkpoint_epoch)
                    break
        if snapshot is not None:
            save_snapshot(snapshot, snapshot_key, {
                "epoch": epoch + 1, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "generator": generator.get_state(), "history": result.history, "checkpoint_epoch": result.checkpoint_epoch,
                "best_loss": best_loss, "best_state": best_state, "stale_epochs": stale_epochs,
            })

    if checkpoint in ("best_train_loss", "early_stopping") and best_state is not None and not result.diverged:
        model.load_state_dict(best_state)
    else:
        result.checkpoint_epoch = len(result.history)
    return result


def save_snapshot(path: str | Path, key: str, state: dict) -> None:
    """Write a training snapshot atomically (tensors on CPU, plain data otherwise)."""
    import io

    from lltax.io import atomic_path

    def to_cpu(value):
        if isinstance(value, torch.Tensor):
            return value.detach().cpu().clone()
        if isinstance(value, dict):
            return {k: to_cpu(v) for k, v in value.items()}
        if isinstance(value, list):
            return [to_cpu(v) for v in value]
        return value

    buffer = io.BytesIO()
    torch.save({"key": key, **to_cpu(state)}, buffer)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getvalue())


def load_snapshot(path: str | Path, key: str) -> dict | None:
    """The snapshot at ``path`` if it belongs to the run ``key`` (else None: start afresh)."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # unreadable: a fresh start costs time, never correctness
        log.warning("ignoring unreadable training snapshot %s (%s)", path, type(e).__name__)
        return None
    if not isinstance(state, dict) or state.get("key") != key:
        log.warning("ignoring training snapshot %s: it belongs to another run (settings changed)", path)
        return None
    if "momentum_buffers" not in state.get("optimizer", {}):  # torch.optim's state: an older lltax
        log.warning("ignoring training snapshot %s: written by an older lltax", path)
        return None
    return state


# ---------------------------------------------------------------------------------------------
# The train job: one cell and seed -> model.pt + train.json


def run_train_job(
    *,
    cell: dict,
    seed: int,
    dataset: dict,
    model_name: str,
    train_settings: dict,
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
    from lltax.checkpoint import save_checkpoint, versions
    from lltax.config import canonical_json, config_hash
    from lltax.data import augment_batch, load_dataset
    from lltax.device import resolve_device, runtime_info
    from lltax.evaluation import evaluate_model
    from lltax.io import write_json
    from lltax.models import build_model

    torch_device = resolve_device(device)
    data = load_dataset(dataset["name"], root=data_dir, label_noise=cell["label_noise"], train_fraction=cell["train_fraction"], download=dataset.get("download", False), device=torch_device,
                        label_noise_mode=dataset.get("label_noise_mode", "exact"))
    torch.manual_seed(seed)  # model initialisation
    model = build_model(model_name, cell["width"], data.num_classes, data.input_shape).to(torch_device)
    log.info("training %s width=%d (%d parameters) on %s, %d samples, cell %s, seed %d, device %s",
             model_name, cell["width"], sum(p.numel() for p in model.parameters()), dataset["name"], len(data.x_train), canonical_json(cell), seed, torch_device)

    provenance = {"cell": cell, "seed": seed, "dataset": dataset, "model": model_name, "train": train_settings}
    out_dir = Path(out_dir)
    snapshot = out_dir / SNAPSHOT_FILE  # not an output: a killed job leaves it for the rerun to resume from
    start = time.perf_counter()
    result = train_model(
        model, data.x_train, data.y_train,
        batch_size=cell["batch_size"], learning_rate=cell["learning_rate"], weight_decay=cell["weight_decay"],
        epochs=train_settings["epochs"], momentum=train_settings["momentum"], lr_schedule=train_settings["lr_schedule"],
        lr_decay_at=train_settings["lr_decay_at"], lr_decay_factor=train_settings["lr_decay_factor"],
        checkpoint=train_settings["checkpoint"], patience=train_settings["patience"], min_delta=train_settings["min_delta"], augment=augment_batch if dataset.get("augment") else None, seed=seed,
        snapshot=snapshot, snapshot_key=config_hash({**provenance, "device": str(torch_device)}),
    )
    wall_time = time.perf_counter() - start

    # The cell's loss and accuracy (the dataset's train_/test_ variables): the checkpointed
    # model in eval mode, on the cell's training labels and the test set.
    nan = float("nan")
    final = {"train_loss": nan, "train_acc": nan, "test_loss": nan, "test_acc": nan}
    if not result.diverged:
        batch = train_settings["eval_batch_size"]
        train_loss, train_acc = evaluate_model(model, data.x_train, data.y_train, batch)
        test_loss, test_acc = evaluate_model(model, data.x_test, data.y_test, batch)
        if math.isfinite(train_loss):
            final = {"train_loss": train_loss, "train_acc": train_acc, "test_loss": test_loss, "test_acc": test_acc}
            log.info("final (eval mode): train loss %.4f acc %.2f%%, test loss %.4f acc %.2f%%", train_loss, train_acc, test_loss, test_acc)
        else:  # finite in train mode, overflowing in eval mode: a diverged model too (DESIGN)
            log.warning("training loss is %s in eval mode: recording the run as diverged", train_loss)
            result.diverged = True

    meta = {
        "model": model_name,
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
        "runtime": runtime_info(),
    }
    save_checkpoint(out_dir / "model.pt", model, meta)
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
    }
    write_json(out_dir / "train.json", summary)
    if not keep_snapshot:
        snapshot.unlink(missing_ok=True)  # the checkpoint is final
    return summary


def run_train_jobs(*, seeds: list[int], out_dirs: list[str | Path], **job) -> list[dict]:
    """Train the seeds of one cell in turn, one process (``run_train_job`` per seed, same files).

    One process per cell instead of per seed: the seeds share the process start-up and
    imports (~2 s), which is most of a small model's training job.
    """
    from lltax.io import one_output_each

    if len(set(seeds)) != len(seeds):
        raise ValueError(f"each seed once: got seeds {seeds}")
    runs = one_output_each(seeds, out_dirs, "seed")
    summaries = [run_train_job(seed=seed, out_dir=out_dir, keep_snapshot=True, **job) for seed, out_dir in runs]
    for out_dir in out_dirs:
        (Path(out_dir) / SNAPSHOT_FILE).unlink(missing_ok=True)  # every checkpoint of the cell is final
    return summaries


def _run_cli(args: argparse.Namespace) -> int:
    from lltax.config import parse_cell_path, parse_settings

    coords = parse_cell_path(args.cell)
    cell = {k: v for k, v in coords.items() if k not in ("seed", "pair")}
    run_train_jobs(
        cell=cell,
        seeds=args.seed,
        dataset=parse_settings(args.dataset, "dataset"),  # schema-checked: a typo is an error, not a default
        model_name=args.model,
        train_settings=parse_settings(args.settings, "train"),
        data_dir=args.data_dir,
        device=args.device,
        out_dirs=args.out_dir,
    )
    return 0


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"seed must be an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"seed must be an integer >= 0, got {value}")
    return value


def add_cli(subparsers) -> None:
    p = subparsers.add_parser("train", help="train one grid cell's seeds in turn; writes model.pt and train.json per seed")
    p.add_argument("--cell", required=True, help="cell path, e.g. width=16/batch_size=128/label_noise=0.0/train_fraction=1.0/learning_rate=0.1/weight_decay=0.0005")
    p.add_argument("--seed", type=_seed, nargs="+", required=True, help="training seed(s), integers >= 0")
    p.add_argument("--dataset", required=True, help='dataset config section as JSON, e.g. {"name": "mnist1d", "download": false, "augment": false}')
    p.add_argument("--model", required=True, help="model name (lltax.models.MODELS)")
    p.add_argument("--settings", required=True, help="train config section as JSON")
    p.add_argument("--data-dir", default="data")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--out-dir", nargs="+", required=True, help="folder for model.pt and train.json, one per seed")
    p.set_defaults(func=_run_cli)

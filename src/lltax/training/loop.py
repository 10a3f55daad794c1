"""Training: SGD with momentum on one grid cell and seed, data as tensors on the device.

One function, read top to bottom (nanoGPT / airbench style): no trainer object, no callbacks.
A run whose loss turns NaN/inf stops and is recorded as diverged; the job still succeeds so
the grid goes on (DESIGN.md, "Rules of the house").
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from lltax.data.augment import apply_augmentation, draw_augmentation
from lltax.data.sequences import target_count
from lltax.training.sgd import SGD

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    model: nn.Module  # the checkpointed model: final, or the lowest-training-loss epoch
    history: list[dict] = field(default_factory=list)
    diverged: bool = False
    checkpoint_epoch: int = 0
    # With trajectory=True: the parameters at initialisation and after each epoch up to the
    # checkpointed one, {name: tensor (points, *shape)} on the CPU (Li et al.'s PCA directions).
    trajectory: dict[str, torch.Tensor] | None = None


def learning_rate_at(
    epoch: int, *, learning_rate: float, epochs: int, lr_schedule: str, lr_decay_at: float, lr_decay_factor: float
) -> float:
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
    augment: bool = False,
    seed: int = 0,
    snapshot: str | Path | None = None,
    snapshot_key: str = "",
    snapshot_minutes: float = 10.0,
    trajectory: bool = False,
    precision: str = "fp32",
    channels_last: bool = False,
    compile: str = "none",
    label_smoothing: float = 0.0,
) -> TrainResult:
    """Train ``model`` in place with minibatch SGD; the last partial batch of each epoch is dropped.

    ``checkpoint``: "final", "best_train_loss" (the lowest-loss epoch's model), or
    "early_stopping": stop after ``patience`` epochs whose training loss did not improve on the
    best by more than ``min_delta``, and keep the last improving epoch's model.
    ``augment``: random crops and flips of image batches (``lltax.data.cells.augment_batch``; 1D data
    is left alone). The batch order and augmentation draw from one CPU generator seeded with
    ``seed``, so a run is bit-reproducible on CPU. Each epoch's numbers are drawn before the
    epoch, in the order a step-by-step loop would draw them, and moved to the device at once:
    nothing inside an epoch waits for the CPU or synchronizes with it.

    ``snapshot``: a file written (atomically) after an epoch, once ``snapshot_minutes`` have
    passed since the last one (0: after every epoch), and after the last epoch, with everything
    the loop carries: model and optimizer state, the generator's state, the history and the
    best-model bookkeeping. If it exists when training starts and its ``snapshot_key`` (a hash
    of what defines the run) matches, training resumes after its epoch, and ends byte-identical
    to an uninterrupted run on CPU (a preempted job loses at most ``snapshot_minutes`` and an
    epoch). A snapshot of another run is ignored. The caller removes it once the final
    checkpoint is written.

    Speed modes (each changes the bits of the result, not the algorithm; see docs/running.md,
    "GPUs"): ``precision`` "fp32" (IEEE float32: TF32 off), "tf32" (TF32 matrix
    products and convolutions on CUDA), "bf16" (bfloat16 autocast of the forward pass, float32
    weights, gradients and update); ``channels_last`` (NHWC memory layout of the model and
    image batches); ``compile`` "none" or a ``torch.compile`` mode ("default",
    "reduce-overhead" = CUDA graphs, "max-autotune") for the model.

    ``label_smoothing``: the training objective's label smoothing (``F.cross_entropy``'s, the
    usual IWSLT recipe's 0.1); the epochs' ``train_loss`` is that objective, every metric
    measures the plain loss. Translation pairs (targets (N, L), ``lltax.data.sequences``) are trained
    on the mean cross-entropy over their non-padding tokens, and ``train_acc`` counts tokens.

    ``trajectory``: keep a float32 CPU copy of the parameters at initialisation and after every
    epoch (``TrainResult.trajectory``, cut at the checkpointed epoch so that its last point is
    the checkpointed model); the snapshot carries it, so a resumed run keeps the same path.
    """
    num_samples = len(x_train)
    steps_per_epoch = num_samples // batch_size
    if steps_per_epoch == 0:
        raise ValueError(
            f"batch_size {batch_size} is larger than the training set ({num_samples} samples); lower grid.batch_size or raise grid.train_fraction"
        )
    generator = torch.Generator().manual_seed(seed)
    optimizer = SGD(model.parameters(), lr=learning_rate, momentum=momentum, weight_decay=weight_decay)
    schedule = dict(
        learning_rate=learning_rate, epochs=epochs, lr_schedule=lr_schedule, lr_decay_at=lr_decay_at, lr_decay_factor=lr_decay_factor
    )
    result = TrainResult(model=model)
    best_loss, best_state, stale_epochs = math.inf, None, 0
    first_epoch = 0
    path = [parameters_copy(model)] if trajectory else None
    state = load_snapshot(snapshot, snapshot_key) if snapshot is not None else None
    if state is not None and trajectory and len(state.get("trajectory") or []) != state["epoch"] + 1:
        log.warning("ignoring training snapshot %s: it holds no training trajectory", snapshot)
        state = None
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        generator.set_state(state["generator"])
        result.history, result.checkpoint_epoch = state["history"], state["checkpoint_epoch"]
        best_loss, best_state, stale_epochs = state["best_loss"], state["best_state"], state["stale_epochs"]
        first_epoch = state["epoch"]
        path = state["trajectory"] if trajectory else None
        log.info("resuming from the snapshot after epoch %d of %d (%s)", first_epoch, epochs, snapshot)

    images = x_train.dim() == 4
    if channels_last and images:
        model.to(memory_format=torch.channels_last)
    forward = model if compile == "none" else torch.compile(model, mode=compile)  # imports dynamo only when asked
    autocast = torch.autocast(x_train.device.type, dtype=torch.bfloat16, enabled=precision == "bf16")
    last_snapshot = time.monotonic()
    with tf32(precision == "tf32"):
        for epoch in range(first_epoch, epochs):
            start = time.perf_counter()
            lr = learning_rate_at(epoch, **schedule)
            optimizer.lr = lr
            model.train()
            order, draws = epoch_draws(num_samples, steps_per_epoch, batch_size, augment and images, generator, x_train.device)
            # Accumulate on the device; one .item() per epoch keeps GPU runs free of per-step syncs.
            loss_sum = torch.zeros((), device=x_train.device)
            correct = torch.zeros((), device=x_train.device, dtype=torch.long)
            # Targets counted in the accuracy: samples, or the epoch's non-padding target tokens.
            counted = steps_per_epoch * batch_size if y_train.dim() == 1 else target_count(y_train[order[: steps_per_epoch * batch_size]])
            for step in range(steps_per_epoch):
                batch = slice(step * batch_size, (step + 1) * batch_size)
                inputs, targets = x_train[order[batch]], y_train[order[batch]]
                if draws is not None:
                    inputs = apply_augmentation(inputs, draws[:, batch])
                if channels_last and images:
                    inputs = inputs.contiguous(memory_format=torch.channels_last)
                if compile == "reduce-overhead":  # a new step: CUDA graph outputs of the last one may be overwritten
                    torch.compiler.cudagraph_mark_step_begin()
                with autocast:
                    logits = forward(inputs)
                    loss = F.cross_entropy(logits, targets, label_smoothing=label_smoothing)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                loss_sum += loss.detach()
                correct += (logits.detach().argmax(dim=1) == targets).sum()
            epoch_loss = loss_sum.item() / steps_per_epoch
            epoch_acc = 100.0 * correct.item() / counted
            seconds = time.perf_counter() - start
            result.history.append({"epoch": epoch + 1, "train_loss": epoch_loss, "train_acc": epoch_acc, "lr": lr, "seconds": seconds})
            log.info("epoch %d/%d  loss %.4f  acc %.2f%%  lr %.3g  %.2fs", epoch + 1, epochs, epoch_loss, epoch_acc, lr, seconds)
            if path is not None:
                path.append(parameters_copy(model))
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
                        log.info(
                            "early stopping at epoch %d: no improvement > %g for %d epochs; keeping epoch %d",
                            epoch + 1,
                            min_delta,
                            patience,
                            result.checkpoint_epoch,
                        )
                        break
            due = snapshot_minutes == 0 or epoch + 1 == epochs or time.monotonic() - last_snapshot >= 60 * snapshot_minutes
            if snapshot is not None and due:
                last_snapshot = time.monotonic()
                save_snapshot(
                    snapshot,
                    snapshot_key,
                    {
                        "epoch": epoch + 1,
                        "model": model.state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "generator": generator.get_state(),
                        "history": result.history,
                        "checkpoint_epoch": result.checkpoint_epoch,
                        "best_loss": best_loss,
                        "best_state": best_state,
                        "stale_epochs": stale_epochs,
                        **({"trajectory": path} if path is not None else {}),
                    },
                )

    if channels_last and images:
        model.to(memory_format=torch.contiguous_format)  # checkpoints in the usual layout
    if checkpoint in ("best_train_loss", "early_stopping") and best_state is not None and not result.diverged:
        model.load_state_dict(best_state)
    else:
        result.checkpoint_epoch = len(result.history)
    if path is not None and not result.diverged:
        kept = path[: result.checkpoint_epoch + 1]
        result.trajectory = {name: torch.stack([point[name] for point in kept]) for name in kept[0]}
    return result


def epoch_draws(
    num_samples: int, steps: int, batch_size: int, augment: bool, generator: torch.Generator, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """An epoch's random numbers, drawn before it in a step-by-step loop's order: the sample
    order, then each step's augmentation (``draw_augmentation``), moved to ``device`` at once."""
    order = torch.randperm(num_samples, generator=generator)
    if not augment:
        return order.to(device), None
    draws = torch.cat([draw_augmentation(batch_size, generator) for _ in range(steps)], dim=1)
    return order.to(device), draws.to(device)


@contextlib.contextmanager
def tf32(enabled: bool):
    """TF32 matrix products and convolutions on CUDA within the block (else IEEE float32)."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = enabled
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def parameters_copy(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's parameters now, as float32 CPU tensors (one point of a trajectory)."""
    return {name: p.detach().to("cpu", torch.float32, copy=True) for name, p in model.named_parameters()}


def save_snapshot(path: str | Path, key: str, state: dict) -> None:
    """Write a training snapshot atomically (tensors on CPU, plain data otherwise)."""
    import io

    from lltax.storage.atomic_files import atomic_path

    def to_cpu(value):
        if isinstance(value, torch.Tensor):
            return value.detach().cpu().clone()
        if isinstance(value, dict):
            return {k: to_cpu(v) for k, v in value.items()}
        if isinstance(value, list):
            return [to_cpu(v) for v in value]
        return value

    from lltax.storage.checkpoint import content_checksum

    payload = {"key": key, **to_cpu(state)}
    buffer = io.BytesIO()
    torch.save({**payload, "checksum": content_checksum(payload)}, buffer)
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
    from lltax.storage.checkpoint import content_checksum

    recorded = state.pop("checksum", None)
    if recorded != content_checksum(state):  # a flipped weight, a hand edit, an older lltax
        log.warning("ignoring training snapshot %s: its contents do not match its checksum; training this seed from the start", path)
        return None
    if "momentum_buffers" not in state.get("optimizer", {}):  # torch.optim's state: an older lltax
        log.warning("ignoring training snapshot %s: written by an older lltax", path)
        return None
    return state

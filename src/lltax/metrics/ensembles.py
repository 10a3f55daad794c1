"""Fast geometric ensembling (Garipov et al. 2018, Algorithm 1) and ensembles of predictions.

From a trained model, SGD continues with a cyclic learning rate that falls linearly from
``lr_max`` to ``lr_min`` over the first half of each cycle and rises back over the second; a
snapshot is taken in the middle of every cycle, where the rate is lowest. The snapshots lie
along a low-loss path around the minimum, and averaging their softmax outputs gives an
ensemble at a fraction of the cost of training independent models. The schedule and the
snapshot epochs follow the reference (timgaripov/dnn-mode-connectivity ``fge.py``:
``cyclic_learning_rate``, a snapshot after each epoch with ``epoch % cycle + 1 == cycle // 2``);
the model's BatchNorm statistics are those it trained with, as there. Two differences from
the reference: SGD starts with a fresh (zero) momentum buffer, where fge.py reloads the
optimizer state saved with the checkpoint; and each epoch drops the last partial batch, where
the reference's loader keeps it.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from lltax.data.sequences import target_count
from lltax.training.model_mode import mode
from lltax.training.sgd import SGD

logger = logging.getLogger(__name__)


def cyclic_learning_rate(epoch: int, progress: float, cycle: int, lr_max: float, lr_min: float) -> float:
    """The rate at ``progress`` in [0, 1] through 0-based ``epoch`` of a ``cycle``-epoch cycle:
    t = (epoch mod cycle + progress) / cycle, lr_max -> lr_min linearly for t < 1/2, back after."""
    t = ((epoch % cycle) + progress) / cycle
    if t < 0.5:
        return lr_max * (1.0 - 2.0 * t) + lr_min * 2.0 * t
    return lr_max * (2.0 * t - 1.0) + lr_min * (2.0 - 2.0 * t)


def fast_geometric_ensembling(
    model: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    *,
    cycles: int,
    cycle_epochs: int,
    lr_max: float,
    lr_min: float,
    batch_size: int,
    momentum: float,
    weight_decay: float,
    seed: int = 0,
) -> list[dict[str, torch.Tensor]]:
    """Snapshots (state dicts) of ``cycles`` cycles of ``cycle_epochs`` epochs each from ``model``
    (not modified: a copy is trained). Batches are a fresh seeded permutation per epoch, the last
    partial batch dropped, the rate set per step."""
    if cycle_epochs < 2 or cycle_epochs % 2:
        raise ValueError(f"fge.cycle_epochs must be an even number >= 2 (a snapshot in the middle of each cycle), got {cycle_epochs}")
    if batch_size > len(inputs):
        raise ValueError(f"batch size {batch_size} exceeds the {len(inputs)} training samples")
    student = copy.deepcopy(model)
    optimizer = SGD([p for p in student.parameters() if p.requires_grad], lr=lr_max, momentum=momentum, weight_decay=weight_decay)
    generator = torch.Generator().manual_seed(seed)
    steps = len(inputs) // batch_size
    snapshots = []
    with mode(student, training=True):
        for epoch in range(cycles * cycle_epochs):
            order = torch.randperm(len(inputs), generator=generator).to(inputs.device)
            for step in range(steps):
                optimizer.lr = cyclic_learning_rate(epoch, step / steps, cycle_epochs, lr_max, lr_min)
                batch = order[step * batch_size : (step + 1) * batch_size]
                loss = F.cross_entropy(student(inputs[batch]), targets[batch])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            if epoch % cycle_epochs + 1 == cycle_epochs // 2:
                snapshots.append({k: v.detach().clone() for k, v in student.state_dict().items()})
                logger.info(
                    "FGE snapshot %d after epoch %d (lr %.5f, last batch loss %.4f)", len(snapshots), epoch + 1, optimizer.lr, loss.item()
                )
    return snapshots


@torch.no_grad()
def probabilities(model: nn.Module, inputs: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """Eval-mode softmax outputs of ``model`` on ``inputs`` (float64, for exact averaging)."""
    with mode(model, training=False):
        return torch.cat([F.softmax(model(inputs[i : i + batch_size]).double(), dim=1) for i in range(0, len(inputs), batch_size)])


def ensemble_accuracy(members: Sequence[torch.Tensor], targets: torch.Tensor) -> float:
    """Accuracy (percent) of the ensemble that averages its members' softmax outputs."""
    mean = torch.stack(list(members)).mean(dim=0)
    if not bool(torch.isfinite(mean).all()):  # a member's outputs are not finite (a diverged model): no accuracy
        return math.nan
    return 100.0 * (mean.argmax(dim=1) == targets).sum().item() / target_count(targets)

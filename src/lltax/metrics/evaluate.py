"""Eval-mode loss and accuracy of a model on its cell's training and test data.

Training metrics use the cell's training labels, noisy ones included: that is the loss the
model was trained on and the one the paper's training-error axis reports (Yang et al. 2021).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from lltax.data.sequences import target_count
from lltax.training.model_mode import mode

METRIC_KEYS = ("train_loss", "train_acc", "test_loss", "test_acc")


@torch.no_grad()
def evaluate_model(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, batch_size: int = 1000) -> tuple[float, float]:
    """Mean cross-entropy and accuracy (percent) of ``model`` in eval mode.

    Per sample for class labels, per non-padding token for translation pairs
    (``lltax.data.sequences``). The model's train/eval mode is restored afterwards.
    """
    total_loss, correct, finite = 0.0, 0, True
    with mode(model, training=False):
        for start in range(0, len(inputs), batch_size):
            logits = model(inputs[start : start + batch_size])
            batch_targets = targets[start : start + batch_size]
            total_loss += F.cross_entropy(logits, batch_targets, reduction="sum").item()
            correct += (logits.argmax(dim=1) == batch_targets).sum().item()
            finite = finite and bool(torch.isfinite(logits).all())
    if not finite:  # outputs NaN or inf (a diverged model): argmax picks an arbitrary class, not an accuracy
        correct = math.nan
    n = target_count(targets)
    return total_loss / n, 100.0 * correct / n


def nan_metrics() -> dict[str, float]:
    return {key: math.nan for key in METRIC_KEYS}


def evaluate_on_dataset(model: nn.Module, dataset: Any, batch_size: int = 1000) -> dict[str, float]:
    """Eval-mode cross-entropy and accuracy (percent) on the training and the test set.

    ``dataset`` is an ``lltax.data.loaders.Dataset``; the training metrics use ``y_train`` (the cell's
    labels, noisy ones included), not ``y_train_clean``.
    """
    train_loss, train_acc = evaluate_model(model, dataset.x_train, dataset.y_train, batch_size)
    test_loss, test_acc = evaluate_model(model, dataset.x_test, dataset.y_test, batch_size)
    return {"train_loss": train_loss, "train_acc": train_acc, "test_loss": test_loss, "test_acc": test_acc}

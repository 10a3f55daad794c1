"""Eval-mode loss and accuracy of a model on tensors, in batches."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


@torch.no_grad()
def evaluate_model(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, batch_size: int = 1000) -> tuple[float, float]:
    """Mean cross-entropy and accuracy (percent) of ``model`` in eval mode.

    The model's train/eval mode is restored afterwards.
    """
    was_training = model.training
    model.eval()
    total_loss, correct = 0.0, 0
    for start in range(0, len(inputs), batch_size):
        logits = model(inputs[start : start + batch_size])
        batch_targets = targets[start : start + batch_size]
        total_loss += F.cross_entropy(logits, batch_targets, reduction="sum").item()
        correct += (logits.argmax(dim=1) == batch_targets).sum().item()
    model.train(was_training)
    n = len(inputs)
    return total_loss / n, 100.0 * correct / n

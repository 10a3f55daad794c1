"""Euclidean distance between the trainable parameters of a cell's seeds.

Yang et al. 2021 report the l2 distance between the weights of models trained from
different seeds next to mode connectivity. Only trainable parameters count: BatchNorm running
statistics are buffers, estimates of the data rather than coordinates of the loss landscape.
"""

from __future__ import annotations

import itertools
import logging
import math

import torch
from torch import nn

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
        raise ValueError(
            f"models have different trainable parameters (only in a: {only_a}; only in b: {only_b}); compare models of one architecture"
        )
    total = 0.0
    for name, a in params_a.items():
        b = params_b[name]
        if a.shape != b.shape:
            raise ValueError(
                f"parameter {name!r} has shape {tuple(a.shape)} in model a but {tuple(b.shape)} in model b; compare models of one width"
            )
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

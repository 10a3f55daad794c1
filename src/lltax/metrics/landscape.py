"""The 1D linear interpolation between two models, and the samples landscape pictures use.

Directions live in ``lltax.metrics.directions``, the evaluation of lines and planes around one
model in ``lltax.metrics.surface``.

- 1D (Goodfellow et al. 2015, "Qualitatively characterizing neural network optimization
  problems"; Li et al. 2018): the training loss and accuracy along the straight line
  theta(alpha) = (1 - alpha) theta_a + alpha theta_b between two seeds' trained models.
  BatchNorm statistics are recomputed on the data sample at every alpha (a train-mode pass;
  the same function as the mode-connectivity curve evaluation, after Garipov et al. 2018's
  ``update_bn``): the running statistics of the two endpoints belong to their own weights,
  and averaging them describes neither network. This costs one extra forward pass over the
  sample per alpha. ``recompute_batchnorm=False`` interpolates the buffers instead.

Training losses are on one fixed sample of training points with the cell's (possibly noisy)
labels.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import nn

from lltax.metrics.bezier import recompute_batchnorm_statistics
from lltax.metrics.evaluate import evaluate_model

__all__ = ["training_sample", "interpolate_1d", "grid_points"]

logger = logging.getLogger(__name__)

# Li et al.'s guard against an all-zero random filter (net_plotter.normalize_direction).
_NORM_EPSILON = 1e-10


def training_sample(inputs: torch.Tensor, targets: torch.Tensor, num_samples: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed random subset of ``num_samples`` points (all of them if there are fewer)."""
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(inputs), generator=generator)[:num_samples].to(inputs.device)
    return inputs[order], targets[order]


# ---------------------------------------------------------------------------------------------
# 1D linear interpolation


def _interpolated_state(state_a: Mapping[str, torch.Tensor], state_b: Mapping[str, torch.Tensor], alpha: float) -> dict:
    if state_a.keys() != state_b.keys():
        raise ValueError("models to interpolate have different state dict keys; both must be the same architecture")
    state = {}
    for name, tensor_a in state_a.items():
        if tensor_a.is_floating_point():
            # (1 - alpha) a + alpha b, not a + alpha (b - a): exact at both ends.
            state[name] = (1.0 - alpha) * tensor_a + alpha * state_b[name]
        else:
            state[name] = tensor_a  # BatchNorm's num_batches_tracked: a counter, not a coordinate
    return state


def interpolate_1d(
    model_a: nn.Module,
    model_b: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    alphas: Sequence[float],
    recompute_batchnorm: bool = True,
    batch_size: int = 1000,
    extra_splits: Mapping[str, tuple[torch.Tensor, torch.Tensor]] | None = None,
) -> dict[str, np.ndarray]:
    """Loss and accuracy along theta(alpha) = (1 - alpha) theta_a + alpha theta_b.

    Parameters
    ----------
    model_a, model_b : nn.Module
        Two models of the same architecture; alpha = 0 is ``model_a``, 1 is ``model_b``.
    inputs, targets : torch.Tensor
        The data sample (class-index targets), on the models' device.
    alphas : sequence of float
        Interpolation coefficients; values outside [0, 1] extrapolate.
    recompute_batchnorm : bool
        True: recompute BatchNorm running statistics on ``inputs`` at every alpha (a
        train-mode pass in batches of ``batch_size``; with one batch they are the sample's
        mean and unbiased variance). False: interpolate the buffers too.
    batch_size : int
        Samples per forward pass.
    extra_splits : mapping of name to (inputs, targets), optional
        Also evaluated at every alpha (e.g. the test set), as "<name>_loss", "<name>_accuracy";
        BatchNorm statistics still come from ``inputs``.

    Returns
    -------
    dict
        ``alpha``, ``loss`` (mean cross-entropy, eval mode) and ``accuracy`` (percent),
        float64 arrays of len(alphas). The models are not modified.
    """
    state_a, state_b = model_a.state_dict(), model_b.state_dict()
    # One working copy for the whole line; each alpha loads its weights into it.
    working = copy.deepcopy(model_a)
    splits = {"": (inputs, targets), **{f"{name}_": split for name, split in (extra_splits or {}).items()}}
    values = {f"{prefix}{q}": [] for prefix in splits for q in ("loss", "accuracy")}
    for alpha in alphas:
        working.load_state_dict(_interpolated_state(state_a, state_b, float(alpha)))
        if recompute_batchnorm:
            recompute_batchnorm_statistics(working, inputs, batch_size)  # no-op without BatchNorm
        for prefix, (x, y) in splits.items():
            loss, accuracy = evaluate_model(working, x, y, batch_size)
            values[f"{prefix}loss"].append(loss)
            values[f"{prefix}accuracy"].append(accuracy)
    return {"alpha": np.asarray(alphas, dtype=np.float64), **{k: np.asarray(v, dtype=np.float64) for k, v in values.items()}}


def grid_points(low: float, high: float, points: int) -> np.ndarray:
    # Rounded so that 0 and 1 come out exact and coordinates have one spelling; + 0.0 drops -0.0.
    return np.linspace(low, high, points).round(12) + 0.0

"""Classic loss-landscape pictures: 1D linear interpolation and 2D filter-normalized surfaces.

- 1D (Goodfellow et al. 2015, "Qualitatively characterizing neural network optimization
  problems"; Li et al. 2018): the training loss and accuracy along the straight line
  theta(alpha) = (1 - alpha) theta_a + alpha theta_b between two seeds' trained models.
  BatchNorm statistics are recomputed on the data sample at every alpha (a train-mode pass;
  the same function as the mode-connectivity curve evaluation, after Garipov et al. 2018's
  ``update_bn``): the running statistics of the two endpoints belong to their own weights,
  and averaging them describes neither network. This costs one extra forward pass over the
  sample per alpha. ``recompute_batchnorm=False`` interpolates the buffers instead.
- 2D (Li et al. 2018, "Visualizing the Loss Landscape of Neural Nets"): the training loss on
  the plane theta + a d1 + b d2 spanned by two random Gaussian directions with filter
  normalization, biases and BatchNorm parameters excluded (their default ``ignore biasbn``),
  BatchNorm in eval mode with the model's running statistics (their default).

All losses are on one fixed sample of training points with the cell's (possibly noisy) labels.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from lltax.metrics.bezier import recompute_batchnorm_statistics
from lltax.metrics.evaluate import evaluate_model
from lltax.modes import mode

__all__ = [
    "training_sample",
    "interpolate_1d",
    "filter_normalized_direction",
    "random_directions",
    "surface_2d",
    "grid_points",
]

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

    Returns
    -------
    dict
        ``alpha``, ``loss`` (mean cross-entropy, eval mode) and ``accuracy`` (percent),
        float64 arrays of len(alphas). The models are not modified.
    """
    state_a, state_b = model_a.state_dict(), model_b.state_dict()
    # One working copy for the whole line; each alpha loads its weights into it.
    working = copy.deepcopy(model_a)
    losses, accuracies = [], []
    for alpha in alphas:
        working.load_state_dict(_interpolated_state(state_a, state_b, float(alpha)))
        if recompute_batchnorm:
            recompute_batchnorm_statistics(working, inputs, batch_size)  # no-op without BatchNorm
        loss, accuracy = evaluate_model(working, inputs, targets, batch_size)
        losses.append(loss)
        accuracies.append(accuracy)
    return {
        "alpha": np.asarray(alphas, dtype=np.float64),
        "loss": np.asarray(losses, dtype=np.float64),
        "accuracy": np.asarray(accuracies, dtype=np.float64),
    }


# ---------------------------------------------------------------------------------------------
# 2D filter-normalized surface


def filter_normalized_direction(params: Mapping[str, torch.Tensor], generator: torch.Generator) -> dict[str, torch.Tensor]:
    """A random Gaussian direction, each filter rescaled to the norm of the parameters' filter.

    A filter is a slice along dim 0 of a tensor with more than one dimension (a conv output
    channel, a row of a linear weight). Tensors with one dimension or none (biases, BatchNorm
    weights) get zero direction: Li et al.'s default ``ignore biasbn``.

    Parameters
    ----------
    params : mapping of name to tensor
        The parameters, e.g. ``dict(model.named_parameters())``.
    generator : torch.Generator
        A CPU generator; the noise is drawn on the CPU in the parameters' dtype and then
        moved, so the direction does not depend on the device.

    Returns
    -------
    dict of name to tensor, shaped, typed and placed like ``params``.
    """
    direction = {}
    for name, theta in params.items():
        theta = theta.detach()
        if theta.dim() <= 1:
            direction[name] = torch.zeros_like(theta)
            continue
        noise = torch.randn(theta.shape, generator=generator, dtype=theta.dtype).to(theta.device)
        scale = theta.flatten(1).norm(dim=1) / (noise.flatten(1).norm(dim=1) + _NORM_EPSILON)
        direction[name] = noise * scale.view(-1, *([1] * (theta.dim() - 1)))
    return direction


def random_directions(model: nn.Module, seed: int) -> tuple[dict, dict]:
    """Two filter-normalized directions for ``model``, drawn in turn from one generator seeded with ``seed``."""
    params = dict(model.named_parameters())
    generator = torch.Generator().manual_seed(seed)
    return filter_normalized_direction(params, generator), filter_normalized_direction(params, generator)


@torch.no_grad()
def _mean_loss(forward: Callable, inputs: torch.Tensor, targets: torch.Tensor, loss_function: Callable, batch_size: int) -> float:
    total = 0.0
    for start in range(0, len(inputs), batch_size):
        batch_targets = targets[start : start + batch_size]
        total += loss_function(forward(inputs[start : start + batch_size]), batch_targets).item() * len(batch_targets)
    return total / len(inputs)


def surface_2d(
    model: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    coords: tuple[Sequence[float], Sequence[float]],
    directions: tuple[Mapping[str, torch.Tensor], Mapping[str, torch.Tensor]],
    loss_function: Callable = F.cross_entropy,
    batch_size: int = 1000,
) -> np.ndarray:
    """Loss at theta + a d1 + b d2 over a grid, model in eval mode (BatchNorm running statistics).

    Parameters
    ----------
    model : nn.Module
        The centre theta; not modified (points are evaluated with ``functional_call``).
    inputs, targets : torch.Tensor
        The data sample, on the model's device.
    coords : (sequence of float, sequence of float)
        Coefficients ``a`` (along d1) and ``b`` (along d2).
    directions : (mapping, mapping)
        d1 and d2, name -> tensor for every parameter (see ``random_directions``).
    loss_function : callable
        ``loss_function(outputs, targets)`` -> batch-mean loss; cross-entropy by default.
    batch_size : int
        Samples per forward pass.

    Returns
    -------
    np.ndarray
        float64 array of shape (len(coords[0]), len(coords[1])); entry [i, j] is the mean loss
        at a = coords[0][i], b = coords[1][j].
    """
    a_values, b_values = coords
    params = {name: p.detach() for name, p in model.named_parameters()}
    first, second = directions
    missing = sorted(set(params) - set(first) | set(params) - set(second))
    if missing:
        raise ValueError(f"directions lack parameters {missing}; build them from this model with random_directions(model, seed)")
    first = {name: first[name].to(theta) for name, theta in params.items()}
    second = {name: second[name].to(theta) for name, theta in params.items()}
    losses = np.empty((len(a_values), len(b_values)))
    with mode(model, training=False):
        for i, a in enumerate(a_values):
            for j, b in enumerate(b_values):
                point = {name: theta + a * first[name] + b * second[name] for name, theta in params.items()}
                losses[i, j] = _mean_loss(
                    lambda x, point=point: functional_call(model, point, (x,)), inputs, targets, loss_function, batch_size
                )
            logger.info("surface row %d/%d (a = %.3g) done", i + 1, len(a_values), a)
    return losses


def grid_points(low: float, high: float, points: int) -> np.ndarray:
    # Rounded so that 0 and 1 come out exact and coordinates have one spelling; + 0.0 drops -0.0.
    return np.linspace(low, high, points).round(12) + 0.0

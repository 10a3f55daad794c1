"""Loss and accuracy at points theta + sum_k c_k d_k of a line or plane, and measurements of it.

``evaluate_points`` is the one evaluator of landscape pictures: training and test loss and
accuracy (any named splits) at every point, BatchNorm as trained (eval mode, the origin's
running statistics, or statistics that move with a ``states`` direction) or recomputed on a
sample at each point (Garipov et al.'s ``update_bn``). Points are evaluated one at a time with
``torch.func.functional_call`` (no state-dict copies), or with ``stack`` > 1 several at once
through ``torch.func.vmap``: on a CPU the forward pass already keeps the cores busy (no gain,
benchmarks/landscape), on a GPU a small model leaves the device idle and stacked points win.

Measurements over the grid (``basin_radii`` here, ``lltax.metrics.eigenratio``) use the same pieces.
"""

from __future__ import annotations

import copy
import itertools
import logging
from collections.abc import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, vmap

from lltax.data.sequences import target_count
from lltax.metrics.bezier import recompute_batchnorm_statistics
from lltax.training.model_mode import mode

__all__ = [
    "BATCHNORM_MODES",
    "point_state",
    "evaluate_points",
    "basin_radii",
]

logger = logging.getLogger(__name__)

BATCHNORM_MODES = ("trained", "recompute")

Split = tuple[torch.Tensor, torch.Tensor]


def point_state(
    origin: Mapping[str, torch.Tensor], directions: Sequence[Mapping[str, torch.Tensor]], coefficients: Sequence[float]
) -> dict:
    """origin + sum_k c_k d_k over the origin's entries (a direction may omit an entry: zero)."""
    point = {}
    for name, theta in origin.items():
        value = theta
        for c, direction in zip(coefficients, directions):
            if name in direction and c != 0.0:
                value = value + c * direction[name].to(theta)
        point[name] = value
    return point


def _check(model: nn.Module, origin: Mapping, directions: Sequence[Mapping]) -> dict[str, torch.Tensor]:
    """The model's parameters and buffers; refuses entries the model lacks."""
    state = {**{n: p.detach() for n, p in model.named_parameters()}, **{n: b.detach() for n, b in model.named_buffers()}}
    unknown = sorted({*origin, *(k for d in directions for k in d)} - set(state))
    if unknown:
        raise ValueError(f"origin or directions name entries the model lacks: {unknown[:5]}; build them from this model")
    return state


@torch.no_grad()
def _sums(forward, inputs: torch.Tensor, targets: torch.Tensor, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed cross-entropy and correct counts of ``forward``: logits of shape (..., n, classes),
    or (..., n, vocabulary, L) for translation pairs (tokens counted, padding not), ``...``
    the stacked points."""
    loss, correct = 0.0, 0
    for start in range(0, len(inputs), batch_size):
        logits = forward(inputs[start : start + batch_size])
        y = targets[start : start + batch_size]
        points = logits.shape[: logits.dim() - y.dim() - 1]
        flat_logits = logits.reshape(-1, *logits.shape[len(points) + 1 :])
        flat_targets = y.expand(*points, *y.shape).reshape(-1, *y.shape[1:])
        per_target = F.cross_entropy(flat_logits, flat_targets, reduction="none")
        loss = loss + per_target.view(*points, -1).sum(dim=-1).double()
        correct = correct + (flat_logits.argmax(dim=1) == flat_targets).view(*points, -1).sum(dim=-1)
    return loss, correct


def evaluate_points(
    model: nn.Module,
    origin: Mapping[str, torch.Tensor],
    directions: Sequence[Mapping[str, torch.Tensor]],
    coords: Sequence[Sequence[float]],
    splits: Mapping[str, Split],
    *,
    batchnorm: str = "trained",
    batchnorm_inputs: torch.Tensor | None = None,
    batch_size: int = 1000,
    stack: int = 1,
) -> dict[str, np.ndarray]:
    """Loss (mean cross-entropy, nats) and accuracy (percent) of every split at every grid point.

    Parameters
    ----------
    model : nn.Module
        The architecture; entries of the state that ``origin`` does not name come from it. Not
        modified.
    origin : mapping
        The centre's entries to move (``directions.direction_space``: parameters, or with
        ``states`` the BatchNorm statistics too).
    directions, coords : sequences of equal length (1 for a line, 2 for a plane)
        Directions d_k and the coefficients c_k along each; the grid is their product.
    splits : mapping of name to (inputs, targets)
        E.g. {"train": ..., "test": ...}; inputs on the model's device.
    batchnorm : {"trained", "recompute"}
        trained: eval mode with the origin's running statistics (moved along a ``states``
        direction); recompute: statistics recomputed on ``batchnorm_inputs`` at every point.
    stack : int
        Points per vmap'ed forward pass (``trained`` only; 1 = a plain loop).

    Returns
    -------
    dict "<split>_loss", "<split>_acc" of float64 arrays shaped like the grid.
    """
    if len(directions) != len(coords) or not 1 <= len(directions) <= 2:
        raise ValueError(f"need 1 or 2 directions with one coordinate list each, got {len(directions)} and {len(coords)}")
    if batchnorm not in BATCHNORM_MODES:
        raise ValueError(f"batchnorm must be one of {list(BATCHNORM_MODES)}, got {batchnorm!r}")
    if batchnorm == "recompute" and batchnorm_inputs is None:
        raise ValueError("batchnorm='recompute' needs batchnorm_inputs, the sample the statistics are recomputed on")
    if stack < 1:
        raise ValueError(f"stack must be >= 1, got {stack}")
    state = _check(model, origin, directions)
    shape = tuple(len(c) for c in coords)
    points = list(itertools.product(*[[float(v) for v in c] for c in coords]))
    results = {f"{name}_{q}": np.empty(len(points)) for name in splits for q in ("loss", "acc")}

    def record(index: int, name: str, loss: float, correct: int) -> None:
        n = target_count(splits[name][1])
        results[f"{name}_loss"][index] = loss / n
        results[f"{name}_acc"][index] = 100.0 * correct / n

    if batchnorm == "recompute":
        working = copy.deepcopy(model)
        for index, c in enumerate(points):
            working.load_state_dict({**state, **point_state(origin, directions, c)})
            recompute_batchnorm_statistics(working, batchnorm_inputs, batch_size)
            with mode(working, training=False):
                for name, (x, y) in splits.items():
                    loss, correct = _sums(working, x, y, batch_size)
                    record(index, name, float(loss), int(correct))
    else:
        # Points as one flat vector each: origin + sum_k c_k d_k is len(directions) fused adds
        # instead of two per tensor, and the model reads views of it (one split, no copies).
        like = dict(origin)
        flat_origin = torch.cat([theta.reshape(-1) for theta in like.values()])
        flat_directions = [
            torch.cat([d[name].to(theta).reshape(-1) if name in d else torch.zeros_like(theta).reshape(-1) for name, theta in like.items()])
            for d in directions
        ]
        sizes = [theta.numel() for theta in like.values()]
        fixed = {k: v for k, v in state.items() if k not in origin}

        def unflatten(flat: torch.Tensor) -> dict[str, torch.Tensor]:
            lead = flat.shape[:-1]
            return {name: chunk.view(*lead, *theta.shape) for (name, theta), chunk in zip(like.items(), flat.split(sizes, dim=-1))}

        def flat_point(c) -> torch.Tensor:
            point = flat_origin
            for coefficient, direction in zip(c, flat_directions):
                point = torch.add(point, direction, alpha=coefficient)
            return point

        with mode(model, training=False):
            for first in range(0, len(points), stack):
                group = points[first : first + stack]
                if stack == 1:
                    entries = {**fixed, **unflatten(flat_point(group[0]))}

                    def forward(x, entries=entries):
                        return functional_call(model, entries, (x,))
                else:
                    stacked = unflatten(torch.stack([flat_point(c) for c in group]))

                    def forward(x, stacked=stacked):
                        return vmap(lambda point: functional_call(model, {**fixed, **point}, (x,)))(stacked)

                for name, (x, y) in splits.items():
                    loss, correct = _sums(forward, x, y, batch_size)
                    losses, corrects = loss.reshape(-1).tolist(), correct.reshape(-1).tolist()
                    for offset in range(len(group)):
                        record(first + offset, name, losses[offset], int(corrects[offset]))
    return {key: values.reshape(shape) for key, values in results.items()}


@torch.no_grad()
def basin_radii(
    model: nn.Module,
    directions: Sequence[Mapping[str, torch.Tensor]],
    inputs: torch.Tensor,
    targets: torch.Tensor,
    *,
    rise: float,
    max_radius: float,
    coarse: int = 6,
    refine: int = 6,
    batch_size: int = 1000,
) -> tuple[np.ndarray, np.ndarray]:
    """Distance along each direction (both signs) at which the training loss first exceeds the
    model's own by ``rise`` (Huang et al. 2019's basin width, on filter-normalized directions).

    Along each ray the loss is evaluated at radii max_radius / 2^j (``coarse`` of them, doubling
    up to ``max_radius``); the first one above the threshold brackets the crossing with the one
    before it (or 0), and ``refine`` bisections narrow it; the radius is the bracket's midpoint.
    A ray that stays below the threshold up to ``max_radius`` reports ``max_radius`` and is
    censored. Eval mode, the model's own BatchNorm statistics. Returns (radii, censored), one
    entry per ray: d_1, -d_1, d_2, -d_2, ...
    """
    params = {n: p.detach() for n, p in model.named_parameters()}

    def loss_at(direction, radius: float) -> float:
        point = point_state(params, [direction], [radius])
        loss, _ = _sums(lambda x: functional_call(model, point, (x,)), inputs, targets, batch_size)
        return float(loss) / target_count(targets)

    with mode(model, training=False):
        threshold = loss_at({}, 0.0) + rise
        radii, censored = [], []
        schedule = [max_radius / 2**j for j in range(coarse - 1, -1, -1)]
        for direction, sign in itertools.product(directions, (1.0, -1.0)):
            ray = {k: sign * v for k, v in direction.items()}
            low, high = 0.0, None
            for radius in schedule:
                if not loss_at(ray, radius) < threshold:  # a NaN loss (overflowing weights) is past any rise
                    high = radius
                    break
                low = radius
            if high is None:
                radii.append(max_radius)
                censored.append(True)
                continue
            for _ in range(refine):
                middle = (low + high) / 2
                low, high = (low, middle) if not loss_at(ray, middle) < threshold else (middle, high)
            radii.append((low + high) / 2)
            censored.append(False)
    return np.asarray(radii), np.asarray(censored)

"""Directions in weight space for landscape pictures (Li et al. 2018; Garipov et al. 2018).

A direction is a dict name -> tensor over the entries it moves: the model's parameters
(``over="weights"``) or every floating entry of its state dict, BatchNorm running statistics
included (``over="states"``, Li et al.'s ``--dir_type states``). Kinds:

- ``random_direction``: Gaussian noise rescaled per ``normalization`` (Li et al.'s
  ``net_plotter.normalize_direction``): ``filter`` (each filter, a slice along dim 0, to the
  norm of the model's filter; for a linear or embedding matrix, as in a ``transformer``, a
  filter is one output row: a unit's, or a token's embedding), ``layer`` (each tensor to the tensor's norm), ``model`` (the
  whole direction to the whole model's norm), ``weight`` (elementwise times the weights),
  ``dfilter`` / ``dlayer`` (unit filters / unit tensors). 1-D tensors (biases, BatchNorm
  weights and statistics) get zero with ``ignore_biasbn`` and otherwise a copy of the weights,
  as in the reference's ``normalize_directions_for_weights``/``_states``.
- ``eigenvector_directions``: the top Hessian eigenvectors (unit vectors over the parameters).
- ``plane_through``: the line or plane through two or three models (origin, orthogonalized
  directions, and each model's coordinates in them).
- ``pca_directions``: principal directions of a training trajectory, with its projection.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import nn

from lltax.metrics.bezier import flatten_bend, unflatten_bend

__all__ = [
    "NORMALIZATIONS",
    "direction_space",
    "random_direction",
    "eigenvector_directions",
    "plane_through",
    "pca_directions",
    "orthogonalize",
]

NORMALIZATIONS = ("filter", "layer", "model", "weight", "dfilter", "dlayer")
_NORM_EPSILON = 1e-10  # the reference's guard against an all-zero random filter

Direction = dict[str, torch.Tensor]


def direction_space(model: nn.Module, over: str = "weights") -> dict[str, torch.Tensor]:
    """The entries a direction moves, detached: parameters, or (``states``) every floating state
    dict entry (BatchNorm's integer ``num_batches_tracked`` is a counter, not a coordinate).

    Li et al.'s ``get_random_states`` also draws noise for each ``num_batches_tracked`` (one
    scalar) before ignoring it; lltax skips those draws, so a ``states`` direction has the same
    distribution as the reference's but, past the first BatchNorm layer, another random stream
    (the same seed gives other numbers)."""
    if over == "weights":
        return {name: p.detach() for name, p in model.named_parameters()}
    if over == "states":
        return {name: t.detach() for name, t in model.state_dict().items() if t.is_floating_point()}
    raise ValueError(f"directions are over 'weights' or 'states', got {over!r}")


def random_direction(
    space: Mapping[str, torch.Tensor], generator: torch.Generator, *, normalization: str = "filter", ignore_biasbn: bool = True
) -> Direction:
    """A Gaussian direction over ``space`` (``direction_space``), normalized as the module says.

    Noise is drawn on the CPU in each tensor's dtype, tensor by tensor in ``space``'s order,
    then moved: the direction does not depend on the device.
    """
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"unknown normalization {normalization!r}; choose one of {list(NORMALIZATIONS)}")
    direction = {}
    for name, theta in space.items():
        noise = torch.randn(theta.shape, generator=generator, dtype=theta.dtype).to(theta.device)
        if theta.dim() <= 1:
            direction[name] = torch.zeros_like(theta) if ignore_biasbn else theta.clone()
        elif normalization == "filter":
            scale = theta.flatten(1).norm(dim=1) / (noise.flatten(1).norm(dim=1) + _NORM_EPSILON)
            direction[name] = noise * scale.view(-1, *([1] * (theta.dim() - 1)))
        elif normalization == "dfilter":
            direction[name] = noise / (noise.flatten(1).norm(dim=1) + _NORM_EPSILON).view(-1, *([1] * (theta.dim() - 1)))
        elif normalization == "layer":
            direction[name] = noise * (theta.norm() / (noise.norm() + _NORM_EPSILON))
        elif normalization == "dlayer":
            direction[name] = noise / (noise.norm() + _NORM_EPSILON)
        elif normalization == "weight":
            direction[name] = noise * theta
        else:  # model: scaled as a whole below
            direction[name] = noise
    if normalization == "model":
        moved = [name for name, theta in space.items() if theta.dim() > 1]
        theta_norm = torch.sqrt(sum(space[n].double().pow(2).sum() for n in moved)) if moved else 0.0
        noise_norm = torch.sqrt(sum(direction[n].double().pow(2).sum() for n in moved)) if moved else 1.0
        for name in moved:
            direction[name] = direction[name] * float(theta_norm / (noise_norm + _NORM_EPSILON))
    return direction


def orthogonalize(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """``second`` minus its projection on ``first`` (one Gram-Schmidt step, flat vectors)."""
    return second - (second @ first) / (first @ first) * first


def eigenvector_directions(
    model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, count: int = 2, seed: int = 0, tolerance: float = 1e-6
) -> tuple:
    """The ``count`` top eigenvectors of the training-loss Hessian at ``model`` (eval mode, its
    running statistics), as unit directions over its parameters, with their eigenvalues.

    scipy's ``eigsh`` (implicitly restarted Lanczos, ARPACK; its own arithmetic in float64, the
    Hessian-vector products in the model's dtype) to relative accuracy ``tolerance``; the start
    vector comes from ``seed``. Returns (directions, eigenvalues descending).
    """
    from scipy.sparse.linalg import ArpackNoConvergence, LinearOperator, eigsh

    from lltax.metrics.hvp import HessianOperator
    from lltax.training.model_mode import mode

    with mode(model, training=False):
        operator = HessianOperator(model, inputs, targets)
        if count >= operator.dimension:
            raise ValueError(f"asked for {count} eigenvectors of a Hessian of dimension {operator.dimension}")

        def matvec(vector: np.ndarray) -> np.ndarray:
            product = operator.matvec(torch.as_tensor(vector.reshape(-1), dtype=operator.dtype, device=operator.device))
            return product.detach().double().cpu().numpy()

        start = np.random.default_rng(seed).standard_normal(operator.dimension)
        linear = LinearOperator((operator.dimension,) * 2, matvec=matvec, dtype=np.float64)
        try:
            values, vectors = eigsh(linear, k=count, which="LA", v0=start, tol=tolerance)
        except ArpackNoConvergence as error:
            raise ValueError(f"the top {count} Hessian eigenvectors did not converge ({error}); use landscape.directions: random") from None
    order = np.argsort(values)[::-1]
    like = {name: p.detach() for name, p in model.named_parameters() if p.requires_grad}
    directions = [
        {
            k: v.clone()
            for k, v in unflatten_bend(torch.as_tensor(vectors[:, i].copy()).to(operator.dtype).to(operator.device), like).items()
        }
        for i in order
    ]
    return directions, [float(values[i]) for i in order]


def plane_through(models: Sequence[Mapping[str, torch.Tensor]]) -> tuple[Direction, list[Direction], np.ndarray]:
    """The line through two models or the plane through three (Garipov et al.'s Figure 1 plane).

    Origin = the first model; d1 = w1 - w0; with a third model d2 = w2 - w0 orthogonalized
    against d1 and scaled to |d1|, so coordinates are in units of |w1 - w0| on both axes.
    Returns (origin, directions, coordinates): coordinates[i] are model i's (a, b) (or (a,)).
    """
    if len(models) not in (2, 3):
        raise ValueError(f"a line or plane goes through 2 or 3 models, got {len(models)}")
    flat = [flatten_bend(m).double() for m in models]
    first = flat[1] - flat[0]
    if float(first.norm()) == 0.0:
        raise ValueError("the first two models are the same point; a line through them has no direction")
    directions = [first]
    if len(models) == 3:
        second = orthogonalize(first, flat[2] - flat[0])
        if float(second.norm()) <= 1e-12 * float(first.norm()):
            raise ValueError("the three models lie on one line; they span no plane")
        directions.append(second * (first.norm() / second.norm()))
    # Coordinates by least squares on the (orthogonal) directions: exact for models in the span.
    basis = torch.stack(directions, dim=1)
    coordinates = torch.linalg.lstsq(basis, torch.stack([f - flat[0] for f in flat], dim=1)).solution.T
    like = dict(models[0])
    as_dicts = [{k: v.to(like[k].dtype) for k, v in unflatten_bend(d, like).items()} for d in directions]
    return dict(models[0]), as_dicts, coordinates.numpy()


def pca_directions(trajectory: Sequence[Mapping[str, torch.Tensor]], count: int = 2) -> tuple[list[Direction], np.ndarray, np.ndarray]:
    """Principal directions of a training trajectory around its last point (Li et al. 2018, Sec. 7).

    As Li et al.'s ``setup_PCA_directions`` (projection.py; sklearn's PCA, which centres): the
    offsets w_i - w_final of every point, the final one (a zero row) included as the reference
    feeds every saved epoch up to the last, are centred and decomposed by SVD; the top
    ``count`` right singular vectors are unit directions, ordered by explained variance. The
    path (every point, the last at the origin) is projected on them uncentred, as the
    reference's ``project_trajectory`` (``cos``: dot products with unit directions).
    Returns (directions, explained variance ratios, the path's coordinates (points x count)).
    """
    if len(trajectory) < count + 1:
        raise ValueError(f"a trajectory of {len(trajectory)} points has fewer than {count} directions besides its end")
    flat = torch.stack([flatten_bend(point).double() for point in trajectory])
    offsets = flat - flat[-1]
    _, singular, right = torch.linalg.svd(offsets - offsets.mean(dim=0), full_matrices=False)
    variance = singular.pow(2)
    ratios = (variance / variance.sum())[:count].numpy() if float(variance.sum()) > 0 else np.zeros(count)
    basis = right[:count]
    like = dict(trajectory[-1])
    directions = [{k: v.to(like[k].dtype) for k, v in unflatten_bend(row, like).items()} for row in basis]
    return directions, ratios, (offsets @ basis.T).numpy()

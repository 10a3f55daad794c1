"""The eigenvalue-ratio map of Li et al. 2018 (Figure 7): the Hessian's extreme eigenvalues at
points of a plane and their ratio, which tells convex from non-convex regions of a surface.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import nn

from lltax.metrics.surface import point_state
from lltax.training.model_mode import mode

logger = logging.getLogger(__name__)


HESSIAN_PARAMETERS = ("matrices", "all")
RATIO_DEFINITIONS = ("li2018", "signed")


def _hessian_variables(model: nn.Module, parameters: str) -> list[nn.Parameter]:
    """The trainable parameters that are *not* the Hessian's variables for ``parameters``:
    ``all`` = none; ``matrices`` = the tensors of fewer than two dimensions (biases, BatchNorm
    weights and shifts), as Li et al.'s ``min_max_hessian_eigs`` (hess_vec_prod.py:
    ``[p for p in net.parameters() if len(p.size()) > 1]``)."""
    if parameters not in HESSIAN_PARAMETERS:
        raise ValueError(f"parameters must be one of {list(HESSIAN_PARAMETERS)}, got {parameters!r}")
    if parameters == "all":
        return []
    return [p for p in model.parameters() if p.requires_grad and p.dim() < 2]


def hessian_extremes(
    model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, *, tolerance: float = 1e-3, seed: int = 0, parameters: str = "all"
) -> tuple[float, float]:
    """Smallest and largest eigenvalue of the training-loss Hessian at ``model`` (eval mode), by
    ARPACK's Lanczos (``eigsh``, both ends of the spectrum, ``which="BE"``) on Hessian-vector
    products of the mean cross-entropy on (inputs, targets).

    ``parameters``: ``all`` = the Hessian over every trainable parameter; ``matrices`` = over
    the tensors of two or more dimensions only, the others held fixed (Li et al.'s
    ``min_max_hessian_eigs``, the Figure 7 quantity: ``eigenvalue_ratio_grid``'s default).
    The solver differs from the reference's on purpose: the reference finds lambda_max by
    ``eigsh(k=1)`` (largest magnitude) and lambda_min as the top of H - 0.51 lambda_max, which
    assumes lambda_min <= 0 (for a spectrum in [0.5, 1] it returns 0.998); ``BE`` finds both ends.
    The reference's loss is the sum of per-batch means over its loader (eigenvalues scaled by
    the number of batches; their ratio is the same)."""
    from scipy.sparse.linalg import ArpackNoConvergence, LinearOperator, eigsh

    from lltax.metrics.hvp import HessianOperator

    fixed = _hessian_variables(model, parameters)
    with mode(model, training=False):
        try:
            for p in fixed:
                p.requires_grad_(False)
            operator = HessianOperator(model, inputs, targets)

            def matvec(vector: np.ndarray) -> np.ndarray:
                product = operator.matvec(torch.as_tensor(vector.reshape(-1), dtype=operator.dtype, device=operator.device))
                return product.detach().double().cpu().numpy()

            linear = LinearOperator((operator.dimension,) * 2, matvec=matvec, dtype=np.float64)
            start = np.random.default_rng(seed).standard_normal(operator.dimension)
            if operator.dimension <= 2:
                raise ValueError("the Hessian needs more than 2 parameters for its extreme eigenvalues")
            try:
                values = eigsh(linear, k=2, which="BE", v0=start, tol=tolerance, return_eigenvectors=False)
            except ArpackNoConvergence as error:
                logger.warning("eigsh did not converge (%s); NaN", error)
                return float("nan"), float("nan")
        finally:
            for p in fixed:
                p.requires_grad_(True)
    return float(np.min(values)), float(np.max(values))


def eigenvalue_ratio(low: np.ndarray, high: np.ndarray, definition: str = "li2018") -> np.ndarray:
    """The ratio mapped from lambda_min and lambda_max (NaN without a positive lambda_max):
    ``li2018`` = |lambda_min / lambda_max| (Li et al.'s plot_2D.plot_2d_eig_ratio, Figure 7:
    near 0 = locally convex, larger = more negative curvature); ``signed`` = lambda_min /
    lambda_max (negative = negative curvature, >= 0 = convex)."""
    if definition not in RATIO_DEFINITIONS:
        raise ValueError(f"definition must be one of {list(RATIO_DEFINITIONS)}, got {definition!r}")
    low, high = np.asarray(low, dtype=float), np.asarray(high, dtype=float)
    ratio = np.where(high > 0, low / np.where(high > 0, high, 1.0), np.nan)
    return np.abs(ratio) if definition == "li2018" else ratio


def eigenvalue_ratio_grid(
    model: nn.Module,
    origin: Mapping[str, torch.Tensor],
    directions: Sequence[Mapping[str, torch.Tensor]],
    coords: Sequence[float],
    inputs: torch.Tensor,
    targets: torch.Tensor,
    *,
    seed: int = 0,
    coords_b: Sequence[float] | None = None,
    definition: str = "li2018",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """lambda_min, lambda_max and their ratio (``eigenvalue_ratio``; NaN without a positive
    top) of the Hessian at every point of the plane (d1, d2) over ``coords`` x ``coords_b``
    (default ``coords``), eval mode with the model's BatchNorm statistics (``hessian_extremes``
    at each point).

    ``definition``: ``li2018`` (default, Li et al.'s Figure 7) = the Hessian over the tensors
    of two or more dimensions, |lambda_min / lambda_max|; ``signed`` = the Hessian over every
    trainable parameter (biases and BatchNorm too), lambda_min / lambda_max with its sign.
    lambda_min and lambda_max are returned signed in both."""
    if definition not in RATIO_DEFINITIONS:
        raise ValueError(f"definition must be one of {list(RATIO_DEFINITIONS)}, got {definition!r}")
    parameters = "matrices" if definition == "li2018" else "all"
    coords_b = coords if coords_b is None else coords_b
    shape = (len(coords), len(coords_b))
    low, high = np.empty(shape), np.empty(shape)
    point_model = copy.deepcopy(model)
    state = model.state_dict()
    for i, a in enumerate(coords):
        for j, b in enumerate(coords_b):
            point_model.load_state_dict({**state, **point_state(origin, directions, [a, b])})
            low[i, j], high[i, j] = hessian_extremes(point_model, inputs, targets, seed=seed, parameters=parameters)
        logger.info("eigenvalue grid row %d/%d", i + 1, len(coords))
    return low, high, eigenvalue_ratio(low, high, definition)

"""Linear CKA between the outputs of a cell's seeds on the same mixup-perturbed inputs.

Yang et al. 2021 compare two trained models by the linear CKA
(Kornblith et al. 2019) of their softmax outputs on training inputs perturbed by mixup with
lambda ~ Beta(16, 16), about 768 samples. High CKA separates phase IV-B from IV-A.

The reference code forwards both models afresh for every ordered pair; here every seed's
model is forwarded once on one fixed set of inputs and its outputs are reused for all pairs,
which gives the same numbers (CKA is symmetric) in O(seeds) instead of O(seeds^2) passes.
"""

from __future__ import annotations

import itertools
import logging
import math
import warnings
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from lltax.data.sequences import PAD
from lltax.training.model_mode import mode

log = logging.getLogger(__name__)

OUTPUTS = ("softmax", "logits")


def _as_matrix(values: torch.Tensor, name: str) -> torch.Tensor:
    if not isinstance(values, torch.Tensor) or values.dim() < 2:
        raise ValueError(f"{name} must be a tensor of shape (samples, features...), got {getattr(values, 'shape', type(values).__name__)}")
    return values.detach().reshape(len(values), -1).to(torch.float64)


def _centered_or_none(values: torch.Tensor, name: str) -> torch.Tensor | None:
    """Column-centered ``values``, or None (with a warning) when they have no variance."""
    centered = values - values.mean(dim=0, keepdim=True)
    # Centering a constant column leaves rounding residue up to ~n * eps * |value| (naive
    # summation bound), not exact zeros; below that the matrix is constant.
    tolerance = len(values) * torch.finfo(torch.float64).eps * torch.linalg.norm(values)
    if torch.linalg.norm(centered) <= tolerance:
        warnings.warn(
            f"linear CKA: {name} is constant over the samples (zero variance after centering); CKA is undefined, returning NaN",
            RuntimeWarning,
            stacklevel=3,
        )
        return None
    return centered


def linear_cka(x: torch.Tensor, y: torch.Tensor) -> float:
    """Linear CKA of two representations of the same samples (Kornblith et al. 2019, eq. 5).

    For column-centered X (n x p) and Y (n x q):
    ``||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F)``, computed in float64. Trailing dimensions
    are flattened into features. Invariant to orthogonal transforms and isotropic scaling
    of either argument; 1 for identical inputs.

    Returns NaN with a ``RuntimeWarning`` when either input is constant over the samples or
    holds NaN/inf values.
    """
    x, y = _as_matrix(x, "x"), _as_matrix(y, "y")
    if len(x) != len(y):
        raise ValueError(f"x and y must hold the same samples; got {len(x)} and {len(y)} rows")
    if len(x) < 2:
        raise ValueError(f"linear CKA needs at least 2 samples, got {len(x)}")
    if not (torch.isfinite(x).all() and torch.isfinite(y).all()):
        warnings.warn("linear CKA: input holds NaN/inf values; returning NaN", RuntimeWarning, stacklevel=2)
        return math.nan
    x_centered, y_centered = _centered_or_none(x, "x"), _centered_or_none(y, "y")
    if x_centered is None or y_centered is None:
        return math.nan
    # Feature-space form: (p x q) products instead of (n x n) Gram matrices.
    cross = torch.linalg.matrix_norm(y_centered.T @ x_centered) ** 2
    norm_x = torch.linalg.matrix_norm(x_centered.T @ x_centered)
    norm_y = torch.linalg.matrix_norm(y_centered.T @ y_centered)
    return float(cross / (norm_x * norm_y))


def pairwise_cka(outputs: Mapping[int, torch.Tensor | None]) -> list[tuple[int, int, float]]:
    """Linear CKA of every unordered pair of seeds (a < b), from precomputed outputs.

    ``outputs[seed]`` is that seed's (samples x classes) output on the shared inputs, or
    None for a diverged model, whose pairs get NaN.
    """
    pairs = []
    for a, b in itertools.combinations(sorted(outputs), 2):
        if outputs[a] is None or outputs[b] is None:
            pairs.append((a, b, math.nan))
        else:
            pairs.append((a, b, linear_cka(outputs[a], outputs[b])))
    return pairs


@torch.no_grad()
def model_outputs(model: nn.Module, inputs: torch.Tensor, output: str = "softmax", batch_size: int = 1000) -> torch.Tensor:
    """The model's eval-mode outputs on ``inputs`` (float64, on CPU), in batches.

    ``output`` is ``softmax`` (class probabilities, as the paper) or ``logits``. For translation
    pairs (``lltax.data.sequences``: logits (N, V, L)) a row is one target token's output
    distribution, for every non-padding target position in order: the rows, and so CKA, do not
    depend on how far the pairs are padded.
    """
    if output not in OUTPUTS:
        raise ValueError(f"output must be one of {list(OUTPUTS)}, got {output!r}")
    with mode(model, training=False):
        chunks = [
            per_row(model(inputs[start : start + batch_size]), inputs[start : start + batch_size])
            for start in range(0, len(inputs), batch_size)
        ]
    logits = torch.cat(chunks).cpu()
    return F.softmax(logits, dim=1) if output == "softmax" else logits


def per_row(logits: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    """float64 (rows, classes): a sample's logits, or each real target token's of a pair."""
    if logits.dim() == 3:  # (N, V, L): rows at the target positions that are not padding
        logits = logits.transpose(1, 2)[inputs[:, 1] != PAD]
    return logits.to(torch.float64)


def models_cka(
    models: Mapping[int, nn.Module | None], inputs: torch.Tensor, output: str = "softmax", batch_size: int = 1000
) -> list[tuple[int, int, float]]:
    """Pairwise linear CKA (a < b) of models keyed by seed; each model is forwarded once.

    A None entry stands for a diverged model: its pairs are NaN.
    """
    outputs = {seed: None if model is None else model_outputs(model, inputs, output, batch_size) for seed, model in models.items()}
    return pairwise_cka(outputs)

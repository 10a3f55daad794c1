"""CKA's input perturbation: mixup of training inputs (the reference code of Yang et al. 2021).

Kept apart from lltax.data (the datasets training reads), so changing the perturbation reruns
CKA and what depends on it, never training.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

logger = logging.getLogger(__name__)


def mixup_batches(x: torch.Tensor, num_samples: int, batch_size: int, alpha: float, seed: int) -> torch.Tensor:
    """Mixup-perturbed training inputs for CKA, as in the reference code of Yang et al. 2021.

    Draws ``num_samples`` distinct inputs of ``x``; in each consecutive batch of
    ``batch_size`` of them, one ``lam ~ Beta(alpha, alpha)`` and a random permutation ``perm``
    within the batch give ``lam * batch + (1 - lam) * batch[perm]`` (Zhang et al. 2018). All
    draws come from ``seed`` alone, so every model pair sees the same inputs.

    Parameters
    ----------
    x : torch.Tensor
        Training inputs (N, ...). If N < num_samples, all N are used (with a warning).
    num_samples, batch_size : int
    alpha : float
        Beta parameter (the paper uses 16).
    seed : int

    Returns
    -------
    torch.Tensor
        (min(num_samples, N), ...) on ``x``'s device, in ``x``'s dtype.
    """
    if num_samples < 1 or batch_size < 1:
        raise ValueError(f"num_samples and batch_size must be >= 1, got {num_samples} and {batch_size}")
    if not alpha > 0:
        raise ValueError(f"mixup alpha must be > 0, got {alpha!r}")
    if len(x) == 0:
        raise ValueError("mixup_batches got no inputs (x is empty)")
    if num_samples > len(x):
        logger.warning("mixup: %d samples requested but only %d training inputs; using all of them", num_samples, len(x))
        num_samples = len(x)
    generator = torch.Generator().manual_seed(seed)
    # torch has no Beta sampler that takes a generator; NumPy's, seeded alike, keeps lam fixed.
    beta_rng = np.random.default_rng(seed)
    indices = torch.randperm(len(x), generator=generator)[:num_samples].to(x.device)
    batches = []
    for start in range(0, num_samples, batch_size):
        batch = x[indices[start : start + batch_size]]
        lam = float(beta_rng.beta(alpha, alpha))
        permutation = torch.randperm(len(batch), generator=generator).to(x.device)
        batches.append(lam * batch + (1.0 - lam) * batch[permutation])
    return torch.cat(batches)

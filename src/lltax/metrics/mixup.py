"""CKA's input perturbation: mixup of training inputs (the reference code of Yang et al. 2021).

Kept apart from lltax.data.cells (the datasets training reads), so changing the perturbation reruns
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


def substituted_tokens(x: torch.Tensor, num_samples: int, fraction: float, vocabulary_size: int, seed: int) -> torch.Tensor:
    """CKA's perturbation of translation pairs (issue 28): source words replaced by random words.

    Mixup moves an image off the data towards another one; token ids cannot be averaged, so
    the discrete analogue used here is substitution noise (as in studies of translation models'
    robustness to noisy input): each source token other than the specials (``lltax.data.sequences``)
    is replaced, with probability ``fraction``, by a token drawn uniformly from the non-special
    vocabulary, and the pair keeps its own target (the teacher-forced prefix the per-token
    outputs are read at). The inputs stay near the data and off it, where models of different
    seeds need not agree. ``num_samples`` distinct training pairs, drawn as ``mixup_batches``
    draws its inputs; all draws come from ``seed`` alone, so every model pair sees the same inputs.
    """
    from lltax.data.sequences import SPECIAL_TOKENS

    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}")
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"token substitution fraction must be in [0, 1], got {fraction!r}")
    if num_samples > len(x):
        logger.warning("token substitution: %d samples requested but only %d training pairs; using all of them", num_samples, len(x))
        num_samples = len(x)
    generator = torch.Generator().manual_seed(seed)
    indices = torch.randperm(len(x), generator=generator)[:num_samples]
    pairs = x.cpu()[indices].clone()
    source = pairs[:, 0]
    replace = (torch.rand(source.shape, generator=generator) < fraction) & (source >= len(SPECIAL_TOKENS))
    words = torch.randint(len(SPECIAL_TOKENS), vocabulary_size, source.shape, generator=generator, dtype=source.dtype)
    pairs[:, 0] = torch.where(replace, words, source)
    return pairs.to(x.device)

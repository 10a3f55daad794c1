"""The Hessian's eigenvalue density by stochastic Lanczos quadrature (SLQ).

For a unit start vector v, m Lanczos steps give a tridiagonal T_m; its eigenvalues (Ritz
values) theta_j and the first components tau_j of its unit eigenvectors give the Gauss
quadrature of the spectral measure of v: sum_j tau_j^2 f(theta_j) = v^T f(H) v for every
polynomial f of degree < 2m. Averaged over random v (E[v v^T] = I / n), the measure is the
eigenvalue density (Ubaru, Chen & Saad 2017; Ghorbani, Krishnan & Xiao 2019). The weights are
the squared *first* components tau_j^2, which PyHessian's ``density`` got wrong on its
development branch only (2022-12 to 2024-01).
A Gaussian of width ``sigma`` around each node makes a density one can plot.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

__all__ = ["lanczos_tridiagonal", "slq_quadrature", "spectral_density"]


def lanczos_tridiagonal(matvec: Callable[[torch.Tensor], torch.Tensor], start: torch.Tensor, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Diagonal and off-diagonal of T after ``steps`` Lanczos steps from ``start`` (normalized
    here), with full reorthogonalization (twice) so the Ritz values have no spurious copies.
    Stops early when the Krylov space is invariant (beta ~ 0): T is then exact."""
    vector = start / start.norm()
    basis = [vector]
    alphas, betas = [], []
    for step in range(steps):
        w = matvec(vector)
        alpha = float(torch.dot(w, vector))
        w = w - alpha * vector - (betas[-1] * basis[-2] if betas else 0.0)
        for _ in range(2):
            for q in basis:
                w = w - torch.dot(q, w) * q
        alphas.append(alpha)
        beta = float(w.norm())
        if step == steps - 1 or beta <= 1e-10 * max(abs(a) for a in alphas):
            break
        betas.append(beta)
        vector = w / beta
        basis.append(vector)
    return np.asarray(alphas), np.asarray(betas[: len(alphas) - 1])


def slq_quadrature(
    matvec: Callable[[torch.Tensor], torch.Tensor],
    dimension: int,
    *,
    steps: int = 80,
    runs: int = 4,
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Nodes (Ritz values) and weights (squared first eigenvector components; each run's sum
    to 1) of ``runs`` Lanczos quadratures from Rademacher start vectors drawn from ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    nodes, weights = [], []
    for _ in range(runs):
        start = (torch.randint(0, 2, (dimension,), generator=generator) * 2 - 1).to(dtype=dtype, device=device)
        alphas, betas = lanczos_tridiagonal(matvec, start, min(steps, dimension))
        tridiagonal = np.diag(alphas) + np.diag(betas, 1) + np.diag(betas, -1)
        values, vectors = np.linalg.eigh(tridiagonal)
        nodes.append(values)
        weights.append(vectors[0] ** 2)
    return nodes, weights


def spectral_density(nodes: list[np.ndarray], weights: list[np.ndarray], grid: np.ndarray, sigma: float) -> np.ndarray:
    """The runs' average quadrature, each node a Gaussian of width ``sigma``: a density over
    ``grid`` that integrates to ~1 when the grid covers the spectrum with margin."""
    if sigma <= 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    grid = np.asarray(grid, dtype=float)
    density = np.zeros_like(grid)
    for values, w in zip(nodes, weights):
        kernels = np.exp(-((grid[:, None] - values[None, :]) ** 2) / (2 * sigma**2)) / (sigma * np.sqrt(2 * np.pi))
        density += kernels @ w
    return density / len(nodes)

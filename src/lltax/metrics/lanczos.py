"""Top eigenvalues of a symmetric operator by Lanczos iteration with full reorthogonalization.

Only Hessian-vector products are needed. Lanczos reaches a given accuracy of the top
eigenvalue in far fewer products than power iteration (PyHessian's method), whose convergence
rate is the ratio of the two top eigenvalues; full reorthogonalization against every earlier
Lanczos vector is cheap next to a Hessian-vector product and keeps the Ritz values free of
spurious copies (Golub & Van Loan, Matrix Computations, 4th ed., sec. 10.3).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

__all__ = ["LanczosResult", "lanczos"]


@dataclass
class LanczosResult:
    """Top Ritz values (descending) with error estimates, and the iterations it took."""

    eigenvalues: list[float]
    errors: list[float]
    iterations: int
    converged: bool


def _ritz_errors(ritz_values: torch.Tensor, residuals: torch.Tensor, previous: torch.Tensor | None) -> torch.Tensor:
    """Error bounds of Ritz values (ascending order): the residual norm, at least the latest change.

    ``residuals`` are the residual norms r = ||H y - theta y|| of the Ritz pairs (beta times the
    last component of the eigenvector of T); some eigenvalue lies within r of each Ritz value
    (Parlett, The Symmetric Eigenvalue Problem, Thm 4.5.1), whatever the rest of the spectrum.
    The sharper r^2 / gap (Kato-Temple) needs the gap to the rest of the spectrum, which a
    Krylov space that has not yet seen a nearby eigenvalue overestimates: on spectra with two
    nearly equal top eigenvalues it claimed 1e-4 and missed it in 9-30 of 40 runs (see
    tests/test_hessian.py), so it is not used. Early on the bound is also at least the latest
    change of the Ritz value (the change is a lower bound on what is left).
    """
    errors = residuals.clone()
    if previous is not None:
        # The k-th largest Ritz value of this step against the k-th largest of the last step.
        shared = min(len(ritz_values), len(previous))
        change = (ritz_values.flip(0)[:shared] - previous.flip(0)[:shared]).abs()
        errors = errors.flip(0)
        errors[:shared] = torch.maximum(errors[:shared], change)
        errors = errors.flip(0)
    return errors


def _lanczos_run(
    matvec: Callable[[torch.Tensor], torch.Tensor],
    dimension: int,
    *,
    top_k: int = 1,
    tolerance: float = 1e-4,
    max_iterations: int = 100,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> LanczosResult:
    """One Lanczos run from one random start: largest ``top_k`` eigenvalues (largest algebraic, not modulus).

    Parameters
    ----------
    matvec : callable
        Flat vector of length ``dimension`` -> the map applied to it.
    dimension : int
        Length of the vectors.
    top_k : int
        Number of largest eigenvalues wanted.
    tolerance : float
        Stop when every wanted Ritz value's error estimate is at most ``tolerance`` times its
        magnitude.
    max_iterations : int
        Most products with the map (the run stops earlier at convergence or when the Krylov
        space is the whole space).
    generator : torch.Generator, optional
        Source of the random start vector (a CPU generator; the vector is then moved).
    dtype, device
        Of the Lanczos vectors (the map's).

    Returns
    -------
    LanczosResult
        ``eigenvalues`` (descending, ``top_k`` of them, fewer only if ``dimension < top_k``),
        absolute ``errors`` estimates, ``iterations`` (= products), ``converged``.
    """
    if top_k < 1 or max_iterations < 1 or not tolerance > 0:
        raise ValueError(f"need top_k >= 1, max_iterations >= 1 and tolerance > 0; got {top_k}, {max_iterations}, {tolerance}")
    steps = min(max_iterations, dimension)
    vector = torch.randn(dimension, generator=generator, dtype=torch.float64).to(dtype=dtype, device=device)
    vector /= vector.norm()
    basis = [vector]
    alphas: list[float] = []
    betas: list[float] = []
    previous = None
    converged = False
    for step in range(steps):
        w = matvec(vector)
        alpha = torch.dot(w, vector).item()
        w = w - alpha * vector
        if step > 0 and betas[-1] > 0:
            w -= betas[-1] * basis[-2]
        # Full reorthogonalization, twice ("twice is enough", Giraud et al. 2005).
        for _ in range(2):
            for q in basis:
                w -= torch.dot(q, w) * q
        beta = w.norm().item()
        if not (math.isfinite(alpha) and math.isfinite(beta)):
            return LanczosResult([math.nan] * top_k, [math.nan] * top_k, step + 1, False)
        alphas.append(alpha)

        tridiagonal = torch.diag(torch.tensor(alphas, dtype=torch.float64))
        if betas:
            off = torch.tensor(betas, dtype=torch.float64)
            tridiagonal += torch.diag(off, 1) + torch.diag(off, -1)
        ritz_values, ritz_vectors = torch.linalg.eigh(tridiagonal)
        residuals = beta * ritz_vectors[-1].abs()
        errors = _ritz_errors(ritz_values, residuals, previous)
        previous = ritz_values
        wanted = min(top_k, len(ritz_values))
        top_values = ritz_values.flip(0)[:wanted]
        top_errors = errors.flip(0)[:wanted]
        scale = ritz_values.abs().max().item()
        # beta ~ 0: the Krylov space is invariant, its Ritz values are exact eigenvalues, but a
        # single start vector sees each distinct eigenvalue once, so go on from a fresh vector
        # unless the space is exhausted.
        invariant = beta <= 100 * torch.finfo(dtype).eps * max(scale, 1e-300)
        if not invariant and wanted == min(top_k, dimension) and bool((top_errors <= tolerance * top_values.abs()).all()):
            converged = True
            break
        if invariant and len(basis) >= dimension:
            converged = True
            break
        if step == steps - 1:
            break
        if invariant:
            # Restart with a random vector orthogonal to the basis (T gets a zero coupling).
            w = torch.randn(dimension, generator=generator, dtype=torch.float64).to(dtype=dtype, device=device)
            for _ in range(2):
                for q in basis:
                    w -= torch.dot(q, w) * q
            beta_next, vector = 0.0, w / w.norm()
        else:
            beta_next, vector = beta, w / beta
        betas.append(beta_next)
        basis.append(vector)
    if not converged:
        # The spectrum near the top is not resolved, so the gap estimate means nothing: report
        # the residual norms (each Ritz value is within its residual of some eigenvalue).
        top_errors = torch.maximum(top_errors, beta * ritz_vectors[-1].abs().flip(0)[:wanted])
    return LanczosResult(
        eigenvalues=[float(v) for v in top_values],
        errors=[float(e) for e in top_errors],
        iterations=len(alphas),
        converged=converged,
    )


def lanczos(
    matvec: Callable[[torch.Tensor], torch.Tensor],
    dimension: int,
    *,
    top_k: int = 1,
    tolerance: float = 1e-4,
    max_iterations: int = 100,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
    starts: int = 2,
) -> LanczosResult:
    """Largest ``top_k`` eigenvalues of a symmetric linear map, checked from ``starts`` random starts.

    A residual bound says how close a Ritz value is to *some* eigenvalue; it cannot see an
    eigenvalue the Krylov space has not found yet (a start vector nearly orthogonal to the top
    eigenvector of a nearly equal top pair converges to the second one). Independent starts
    catch that: Ritz values are lower bounds of the eigenvalues (interlacing), so the largest
    over the runs is kept, its error bound is at least the spread between the runs, and the
    result counts as converged only when every run converged and the runs agree within the
    tolerance. ``max_iterations`` applies per start; ``iterations`` is the total of products.
    Parameters as ``_lanczos_run``; ``starts`` >= 1.
    """
    if starts < 1:
        raise ValueError(f"need starts >= 1, got {starts}")
    runs = [
        _lanczos_run(
            matvec,
            dimension,
            top_k=top_k,
            tolerance=tolerance,
            max_iterations=max_iterations,
            generator=generator,
            dtype=dtype,
            device=device,
        )
        for _ in range(starts)
    ]
    values = torch.tensor([run.eigenvalues for run in runs], dtype=torch.float64)
    errors = torch.tensor([run.errors for run in runs], dtype=torch.float64)
    best = values.argmax(dim=0)
    chosen = values.max(dim=0).values
    spread = (values - chosen).abs().max(dim=0).values
    error = torch.maximum(errors.gather(0, best[None])[0], spread)
    converged = all(run.converged for run in runs) and bool((spread <= tolerance * chosen.abs()).all())
    return LanczosResult([float(v) for v in chosen], [float(e) for e in error], sum(run.iterations for run in runs), converged)

"""Hessian trace: stochastic estimators (Hutchinson, Hutch++) and the exact Gauss-Newton trace.

Each returns ``(trace, standard_error)``. The stochastic ones use Rademacher probes drawn from
an explicit CPU generator (so a seed gives the same probes on any device).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap

__all__ = ["rademacher", "hutchinson", "hutchpp", "exact_trace"]

MatMat = Callable[[torch.Tensor], torch.Tensor]


def rademacher(
    dimension: int, count: int, generator: torch.Generator | None, dtype: torch.dtype, device: torch.device | str
) -> torch.Tensor:
    """A (dimension, count) matrix of independent random signs +-1."""
    signs = torch.randint(0, 2, (dimension, count), generator=generator, dtype=torch.int8)
    return (2 * signs - 1).to(dtype=dtype, device=device)


def _mean_and_standard_error(samples: torch.Tensor) -> tuple[float, float]:
    samples = samples.double()
    count = samples.numel()
    standard_error = (samples.std(unbiased=True) / math.sqrt(count)).item() if count > 1 else math.nan
    return samples.mean().item(), standard_error


def hutchinson(
    matmat: MatMat,
    dimension: int,
    *,
    num_probes: int = 100,
    block_size: int = 10,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> tuple[float, float]:
    """Hutchinson's estimate mean(v^T H v) over Rademacher probes v, and its standard error.

    Probes are applied ``block_size`` at a time (memory: dimension x block_size).
    """
    if num_probes < 1:
        raise ValueError(f"num_probes must be >= 1, got {num_probes}")
    samples = []
    for start in range(0, num_probes, block_size):
        probes = rademacher(dimension, min(block_size, num_probes - start), generator, dtype, device)
        samples.append((probes * matmat(probes)).sum(dim=0))
    return _mean_and_standard_error(torch.cat(samples))


def hutchpp(
    matmat: MatMat,
    dimension: int,
    *,
    num_matvecs: int = 100,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> tuple[float, float]:
    """Hutch++ trace estimate (Meyer, Musco, Musco & Woodruff 2021) and its standard error.

    With m = ``num_matvecs`` products: sketch Q = orth(H S) from k = m // 3 random sign
    vectors S, take tr(Q^T H Q) exactly, and estimate the trace of the rest,
    (I - QQ^T) H (I - QQ^T), by Hutchinson with the remaining m - 2k probes G. The large
    outlying eigenvalues of a network Hessian land in Q, so the leftover variance is small.
    The standard error is that of the Hutchinson part (the sketch part has no sampling error
    given Q).
    """
    if num_matvecs < 3:
        raise ValueError(f"Hutch++ needs at least 3 Hessian-vector products (trace_probes >= 3), got {num_matvecs}")
    sketch_size = min(num_matvecs // 3, dimension)
    probe_count = num_matvecs - 2 * sketch_size
    sketch = rademacher(dimension, sketch_size, generator, dtype, device)
    probes = rademacher(dimension, probe_count, generator, dtype, device)
    basis, _ = torch.linalg.qr(matmat(sketch))
    # Probes projected off the sketched subspace, applied in the same pass as the basis.
    projected = probes - basis @ (basis.T @ probes)
    products = matmat(torch.cat([basis, projected], dim=1))
    sketch_trace = (basis * products[:, :sketch_size]).sum().item()
    samples = (projected * products[:, sketch_size:]).sum(dim=0)
    rest_trace, standard_error = _mean_and_standard_error(samples)
    return sketch_trace + rest_trace, standard_error


def exact_trace(model: nn.Module, inputs: torch.Tensor, *, chunk_size: int = 200) -> tuple[float, float]:
    """Exact trace of the mean cross-entropy Hessian of a piecewise-linear network.

    For a network linear in each single parameter (linear/conv layers, ReLU, max/avg pooling,
    residual sums, BatchNorm in eval mode) the second derivative of the logits along any one
    parameter is zero, so the Hessian diagonal equals the generalized Gauss-Newton diagonal
    and, for cross-entropy,

        tr(H) = tr(GGN) = (1/N) sum_n sum_c p_nc ||grad_theta loss(x_n, c)||^2,

    p_nc the model's softmax probabilities. This takes one per-sample-gradient pass per class
    (torch.func ``vmap(grad)``), no random probes; the labels drop out. Use it only for such
    networks: for others it gives tr(GGN), not tr(H). Memory: per-sample gradients of
    ``chunk_size`` samples (chunk_size x number of parameters).

    Returns
    -------
    (trace, 0.0)
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive number of samples, got {chunk_size}")
    params = {name: p.detach() for name, p in model.named_parameters() if p.requires_grad}
    frozen = {name: p.detach() for name, p in model.named_parameters() if not p.requires_grad}
    buffers = dict(model.named_buffers())

    def sample_loss(parameters, x, label):
        logits = functional_call(model, (parameters, frozen, buffers), (x.unsqueeze(0),))
        return F.cross_entropy(logits, label.unsqueeze(0))

    per_sample_gradients = vmap(grad(sample_loss), in_dims=(None, 0, 0))
    total = torch.zeros((), dtype=torch.float64, device=inputs.device)
    for start in range(0, len(inputs), chunk_size):
        x = inputs[start : start + chunk_size]
        with torch.no_grad():
            probabilities = F.softmax(model(x), dim=1)
        for label in range(probabilities.shape[1]):
            labels = torch.full((len(x),), label, dtype=torch.long, device=x.device)
            gradients = per_sample_gradients(params, x, labels)
            squared_norms = sum(g.flatten(1).pow(2).sum(dim=1) for g in gradients.values())
            total += (probabilities[:, label] * squared_norms).sum().double()
    return (total / len(inputs)).item(), 0.0

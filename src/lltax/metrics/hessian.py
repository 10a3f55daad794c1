"""Hessian metrics of one checkpoint: top eigenvalue(s) and trace of the training loss.

The loss is the mean cross-entropy on a fixed sample of the cell's training data (its labels,
noisy ones included), model in eval mode, no weight-decay term: what the paper measures with
PyHessian on 200 training samples (Yang et al. 2021; the published results in
shared/reference/yang2021 use PyHessian's defaults).

Two backends:

- ``native`` (default): Lanczos with full reorthogonalization for the top eigenvalue(s)
  (lltax.metrics.lanczos) and Hutch++ for the trace (lltax.metrics.trace), on Hessian-vector
  products that reuse each data chunk's gradient graph (lltax.metrics.hvp).
- ``pyhessian``: the PyHessian package as the paper used it (power iteration, Hutchinson),
  wrapped without changes to the package (lltax.metrics.pyhessian_backend).

Trace methods: ``exact`` (the Gauss-Newton diagonal equals the Hessian diagonal for networks
piecewise linear in each parameter; no probes), ``hutchpp`` (native only), ``hutchinson``, or
``auto`` = exact for piecewise-linear models, else hutchpp (native) / hutchinson (pyhessian).

A diverged model (recorded as such, non-finite parameters, or a non-finite loss on the sample)
gets NaN metrics, written as null.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import numpy as np
import torch
from torch import nn

from lltax.metrics.hvp import HessianOperator
from lltax.metrics.lanczos import lanczos
from lltax.metrics.pyhessian_backend import pyhessian_metrics
from lltax.metrics.trace import exact_trace, hutchinson, hutchpp
from lltax.training.model_mode import mode

__all__ = [
    # the metric
    "BACKENDS",
    "TRACE_METHODS",
    "hessian_metrics",
    "resolve_trace_method",
    "nan_metrics",
    # building blocks
    "HessianOperator",
    "lanczos",
    "hutchpp",
    "hutchinson",
    "exact_trace",
    "pyhessian_metrics",
    # the data sample
    "sample_seed",
    "sample_training_data",
]

log = logging.getLogger(__name__)

BACKENDS = ("native", "pyhessian")
TRACE_METHODS = ("auto", "exact", "hutchpp", "hutchinson")


def resolve_trace_method(trace_method: str, backend: str, piecewise_linear: bool) -> str:
    """The trace method ``auto`` stands for, after checking the combination is valid."""
    if backend not in BACKENDS:
        raise ValueError(f"hessian backend {backend!r} is not known; choose one of {list(BACKENDS)}")
    if trace_method not in TRACE_METHODS:
        raise ValueError(f"hessian trace_method {trace_method!r} is not known; choose one of {list(TRACE_METHODS)}")
    if trace_method == "auto":
        return "exact" if piecewise_linear else ("hutchpp" if backend == "native" else "hutchinson")
    if trace_method == "exact" and not piecewise_linear:
        raise ValueError(
            "trace_method 'exact' is exact only for networks piecewise linear in each parameter "
            "(ReLU, pooling, eval-mode BatchNorm, linear/conv layers); this model is not: use 'auto', 'hutchpp' or 'hutchinson'"
        )
    if trace_method == "hutchpp" and backend == "pyhessian":
        raise ValueError("trace_method 'hutchpp' needs backend 'native'; PyHessian only has 'hutchinson' (or use 'exact'/'auto')")
    return trace_method


def nan_metrics(*, backend: str, trace_method: str, top_k: int, num_samples: int) -> dict[str, Any]:
    """The record of a diverged model: every number NaN (null in JSON)."""
    return {
        "top_eigenvalue": math.nan,
        "top_eigenvalues": [math.nan] * top_k,
        "eigenvalue_error": math.nan,
        "trace": math.nan,
        "trace_error": math.nan,
        "trace_method": trace_method,
        "backend": backend,
        "hvp_count": 0,
        "num_samples": num_samples,
    }


def _is_finite_model(model: nn.Module) -> bool:
    return all(torch.isfinite(t).all() for t in model.state_dict().values() if t.is_floating_point())


def hessian_metrics(
    model: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    *,
    backend: str = "native",
    top_k: int = 1,
    tolerance: float = 1e-4,
    max_iterations: int = 100,
    trace_method: str = "auto",
    trace_probes: int = 100,
    chunk_size: int = 200,
    seed: int = 0,
    piecewise_linear: bool = False,
    lanczos_starts: int = 2,
    trace_chunk_size: int | None = None,
) -> dict[str, Any]:
    """Top eigenvalue(s) and trace of the Hessian of the mean cross-entropy on (inputs, targets).

    Parameters
    ----------
    model : nn.Module
        Evaluated in eval mode (restored afterwards); its trainable parameters are the variables.
    inputs, targets : torch.Tensor
        The data sample, on the model's device; targets are class indices.
    backend : {"native", "pyhessian"}
        Lanczos + Hutch++ on reused gradient graphs, or PyHessian's power iteration + Hutchinson.
    top_k : int
        Number of largest eigenvalues.
    tolerance : float
        Relative accuracy of the eigenvalues: Lanczos stops when each error estimate is below
        ``tolerance * |eigenvalue|``; PyHessian stops when successive power-iteration
        estimates change by less than that, relatively.
    max_iterations : int
        Most Lanczos iterations / power iterations per eigenvalue.
    trace_method : {"auto", "exact", "hutchpp", "hutchinson"}
        See the module docstring; ``exact`` needs ``piecewise_linear``.
    trace_probes : int
        Hessian-vector products of the stochastic trace estimate.
    chunk_size : int
        Samples per forward/backward pass of the Hessian-vector products; does not change the
        result (up to the order of float sums).
    seed : int
        Seed of the Lanczos start vector and the trace probes (PyHessian: of torch's global
        generator, forked so the caller's stream is untouched).
    piecewise_linear : bool
        Whether the network is piecewise linear in each parameter
        (lltax.models.is_piecewise_linear).
    lanczos_starts : int
        Independent Lanczos runs (native backend) whose agreement is part of convergence: a
        single start can converge to the second of two nearly equal top eigenvalues.
    trace_chunk_size : int, optional
        Samples per per-sample-gradient pass of the exact trace (default ``chunk_size``); its
        memory is trace_chunk_size x parameters (lltax.runtime.memory.hessian_chunks picks both chunks).

    Returns
    -------
    dict
        ``top_eigenvalue``, ``top_eigenvalues`` (descending; PyHessian: as found, by decreasing
        magnitude), ``eigenvalue_error`` (absolute
        error estimate of the top eigenvalue), ``trace``, ``trace_error`` (standard error; 0
        for exact), ``trace_method`` (resolved), ``backend``, ``hvp_count`` (Hessian-vector
        products over the whole sample), ``num_samples``. NaN numbers for a diverged model.
    """
    resolved = resolve_trace_method(trace_method, backend, piecewise_linear)
    for name, value, low in (
        ("top_k", top_k, 1),
        ("lanczos_starts", lanczos_starts, 1),
        ("max_iterations", max_iterations, 1),
        ("trace_probes", trace_probes, 1),
        ("chunk_size", chunk_size, 1),
        ("trace_chunk_size", chunk_size if trace_chunk_size is None else trace_chunk_size, 1),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"hessian {name} must be an integer >= {low}, got {value!r}")
    if not tolerance > 0:
        raise ValueError(f"hessian tolerance must be > 0, got {tolerance!r}")
    num_samples = len(inputs)
    nan_record = nan_metrics(backend=backend, trace_method=resolved, top_k=top_k, num_samples=num_samples)
    with mode(model, training=False):
        if not _is_finite_model(model):
            log.warning("model has non-finite parameters or buffers: writing NaN Hessian metrics")
            return nan_record
        operator = HessianOperator(model, inputs, targets, chunk_size)
        loss = operator.loss()
        if not math.isfinite(loss):
            log.warning("training loss on the Hessian sample is %s: writing NaN Hessian metrics", loss)
            return nan_record
        log.info(
            "Hessian of %d parameters on %d samples (loss %.4g), backend %s, trace %s",
            operator.dimension,
            num_samples,
            loss,
            backend,
            resolved,
        )
        options = dict(
            top_k=top_k,
            tolerance=tolerance,
            max_iterations=max_iterations,
            trace_method=resolved,
            trace_probes=trace_probes,
            chunk_size=chunk_size,
            seed=seed,
        )
        if backend == "native":
            trace_chunk = chunk_size if trace_chunk_size is None else trace_chunk_size
            record = _native_metrics(operator, inputs, **{**options, "chunk_size": trace_chunk}, starts=lanczos_starts)
        else:
            record = pyhessian_metrics(model, inputs, targets, **options)
    values = [record["top_eigenvalue"], record["trace"], *record["top_eigenvalues"]]
    if not all(math.isfinite(v) for v in values):
        log.warning("non-finite Hessian estimates %s: writing NaN Hessian metrics", values)
        return {**nan_record, "hvp_count": record["hvp_count"]}
    return {**record, "trace_method": resolved, "backend": backend, "num_samples": num_samples}


def _native_metrics(
    operator: HessianOperator,
    inputs: torch.Tensor,
    *,
    top_k: int,
    tolerance: float,
    max_iterations: int,
    trace_method: str,
    trace_probes: int,
    chunk_size: int,
    seed: int,
    starts: int,
) -> dict[str, Any]:
    """Lanczos for the eigenvalues, then the trace (exact: per-sample gradients in chunks of
    ``chunk_size``); one generator (``seed``) for all draws."""
    generator = torch.Generator().manual_seed(seed)
    started = time.perf_counter()
    result = lanczos(
        operator.matvec,
        operator.dimension,
        top_k=top_k,
        tolerance=tolerance,
        max_iterations=max_iterations,
        generator=generator,
        dtype=operator.dtype,
        device=operator.device,
        starts=starts,
    )
    if not result.converged:
        log.warning("Lanczos did not reach tolerance %g in %d iterations (error estimate %s)", tolerance, result.iterations, result.errors)
    log.info(
        "top eigenvalues %s (error %s) after %d Lanczos iterations, %.1f s",
        result.eigenvalues,
        result.errors,
        result.iterations,
        time.perf_counter() - started,
    )
    started = time.perf_counter()
    kwargs = dict(generator=generator, dtype=operator.dtype, device=operator.device)
    if trace_method == "exact":
        trace, trace_error = exact_trace(operator.model, inputs, chunk_size=chunk_size)
    elif trace_method == "hutchpp":
        trace, trace_error = hutchpp(operator.matmat, operator.dimension, num_matvecs=trace_probes, **kwargs)
    else:
        trace, trace_error = hutchinson(operator.matmat, operator.dimension, num_probes=trace_probes, **kwargs)
    log.info("trace %.6g +- %.2g (%s), %.1f s", trace, trace_error, trace_method, time.perf_counter() - started)
    return {
        "top_eigenvalue": result.eigenvalues[0],
        "top_eigenvalues": result.eigenvalues,
        "eigenvalue_error": result.errors[0],
        "trace": trace,
        "trace_error": trace_error,
        "hvp_count": operator.hvp_count,
    }


# ---------------------------------------------------------------------------------------------
# The data sample the Hessian is taken on


def sample_seed(settings: dict[str, Any], model_seed: int) -> int:
    """Seed of the Hessian's data sample: ``hessian.seed``, or with ``sample: per_seed`` one per training seed."""
    if settings["sample"] == "shared":
        return settings["seed"]
    return int(np.random.SeedSequence([settings["seed"], model_seed]).generate_state(1)[0])


def sample_training_data(inputs: torch.Tensor, targets: torch.Tensor, num_samples: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed random sample of ``num_samples`` training points (all of them if fewer).

    Drawn without replacement by a CPU generator seeded with ``seed``, so every seed's model of
    a cell (and every device) gets the same sample.
    """
    available = len(inputs)
    if num_samples > available:
        log.warning("hessian num_samples %d > %d training samples of this cell: using all of them", num_samples, available)
    generator = torch.Generator().manual_seed(seed)
    indices = torch.randperm(available, generator=generator)[: min(num_samples, available)].to(inputs.device)
    return inputs[indices], targets[indices]

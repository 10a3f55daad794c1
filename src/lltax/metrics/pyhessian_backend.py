"""The PyHessian backend: the package the paper used (power iteration, Hutchinson), wrapped.

PyHessian (Yao et al. 2020, pyhessian 0.1) is used as installed, without edits: the data goes
in as a list of (inputs, targets) chunks through ``dataloader=``; a subclass only counts its
Hessian-vector products and records the Rayleigh quotients of its power iteration; its
``cuda`` flag follows the model's device; its vectors, made with the default dtype, are made
in the model's dtype; its random vectors come from torch's global generator, seeded inside
``torch.random.fork_rng`` so that the caller's random stream is untouched.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from typing import Any

import numpy as np
import torch
from torch import nn

from lltax.metrics.trace import exact_trace

__all__ = ["pyhessian_metrics"]


def _counting_pyhessian_class():
    """A pyhessian.hessian subclass that counts products and records Rayleigh quotients."""
    from pyhessian import hessian as PyHessian

    class CountingPyHessian(PyHessian):
        def dataloader_hv_product(self, v):
            eigenvalue, product = super().dataloader_hv_product(v)
            self.hvp_count = getattr(self, "hvp_count", 0) + 1
            self.rayleigh_quotients = [*getattr(self, "rayleigh_quotients", []), eigenvalue]
            return eigenvalue, product

    return CountingPyHessian


@contextlib.contextmanager
def _default_dtype(dtype: torch.dtype):
    # PyHessian creates its vectors with torch.randn/zeros (default dtype): match the model's.
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def _last_power_iteration_change(quotients: list[float], tolerance: float, max_iterations: int) -> float:
    """|last - previous| Rayleigh quotient of PyHessian's first (top) power iteration.

    Replays PyHessian's stopping rule to find where the top eigenvalue's iteration ended.
    """
    for step in range(1, min(max_iterations, len(quotients))):
        change = abs(quotients[step] - quotients[step - 1])
        if change / (abs(quotients[step - 1]) + 1e-6) < tolerance or step == max_iterations - 1:
            return change
    return math.nan


def pyhessian_metrics(
    model: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    *,
    top_k: int = 1,
    tolerance: float = 1e-4,
    max_iterations: int = 100,
    trace_method: str = "hutchinson",
    trace_probes: int = 100,
    chunk_size: int = 200,
    seed: int = 0,
) -> dict[str, Any]:
    """Top eigenvalue(s) and trace by the PyHessian package, as the paper computed them.

    Arguments as in ``lltax.metrics.hessian.hessian_metrics`` (same keys returned, less
    trace_method/backend/num_samples). Differences from the native backend:

    - Power iteration (one eigenvalue at a time, with deflation) converges to the eigenvalue of
      largest *magnitude*, and returns them in the order found; stops when successive
      estimates change by less than ``tolerance``, relatively, or after ``max_iterations``.
    - ``eigenvalue_error`` is the last change of the top eigenvalue's power iteration,
      PyHessian's own stopping measure; it underestimates the error when the iteration
      converges slowly (the ratio of the two top eigenvalues near 1).
    - ``trace_method``: ``hutchinson`` (PyHessian's, exactly ``trace_probes`` probes; its
      stopping rule is turned off, see below) or ``exact``.
    - Every product recomputes each chunk's gradient (``dataloader=`` mode). PyHessian's
      single-batch mode would keep the graph, but it accumulates ``.grad`` with
      ``create_graph`` on the model itself.
    - The model is left in eval mode with its ``.grad`` cleared (PyHessian does both).
    """
    if trace_method not in ("hutchinson", "exact"):
        raise ValueError(f"the pyhessian backend computes the trace by 'hutchinson' or 'exact', not {trace_method!r}")
    params = [p for p in model.parameters() if p.requires_grad]
    device = params[0].device
    chunks = [(inputs[start : start + chunk_size], targets[start : start + chunk_size]) for start in range(0, len(inputs), chunk_size)]
    fork_devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=fork_devices), _default_dtype(params[0].dtype), warnings.catch_warnings():
        # PyHessian calls loss.backward(create_graph=True), which warns about a reference cycle
        # between each parameter and its gradient; it clears the gradients right after.
        warnings.filterwarnings("ignore", message="Using backward\\(\\) with create_graph=True")
        torch.manual_seed(seed)
        computer = _counting_pyhessian_class()(model, torch.nn.CrossEntropyLoss(), dataloader=chunks, cuda=device.type == "cuda")
        eigenvalues, _ = computer.eigenvalues(maxIter=max_iterations, tol=tolerance, top_n=top_k)
        eigenvalue_error = _last_power_iteration_change(getattr(computer, "rayleigh_quotients", []), tolerance, max_iterations)
        if trace_method == "exact":
            trace, trace_error = exact_trace(model, inputs, chunk_size=chunk_size)
        else:
            # PyHessian's Hutchinson stops once |mean - previous mean| / (previous mean + 1e-6)
            # < tol: the signed denominator stops it after two probes whenever the running mean
            # is negative. tol=-inf turns that rule off: always trace_probes probes.
            samples = np.asarray(computer.trace(maxIter=trace_probes, tol=-math.inf), dtype=np.float64)
            trace = float(samples.mean())
            trace_error = float(samples.std(ddof=1) / math.sqrt(len(samples))) if len(samples) > 1 else math.nan
    model.zero_grad(set_to_none=True)
    return {
        "top_eigenvalue": float(eigenvalues[0]),
        "top_eigenvalues": [float(v) for v in eigenvalues],
        "eigenvalue_error": eigenvalue_error,
        "trace": trace,
        "trace_error": trace_error,
        "hvp_count": getattr(computer, "hvp_count", 0),
    }

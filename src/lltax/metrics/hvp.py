"""Hessian-vector products of the mean cross-entropy of a model on a fixed sample of data.

The loss is the mean over the whole sample; the sample is processed in chunks of
``chunk_size`` samples, so the Hessian is the chunk-size-weighted mean of the chunk Hessians
(each chunk contributes the Hessian of its summed loss divided by the sample size).

How a product is formed (measured in benchmarks/README.md, section "Hessian"): the gradient of
a chunk's loss is built once with ``create_graph=True`` and differentiated again for each
vector (PyHessian's trick). On a small 1D CNN that costs about 2.3x less per product than
torch.func forward-over-reverse (``jvp`` of ``grad``) or rebuilding the gradient for every
product, and ``torch.func.linearize`` or several vectors at once (``is_grads_batched``) are no
faster. With one chunk (the default: ``chunk_size >= num_samples``) the gradient graph is kept
for the operator's lifetime. With several chunks, keeping every chunk's graph would hold the
whole sample's double-backward graph in memory, defeating ``chunk_size`` as a memory bound, so
each call rebuilds the chunk graphs one at a time and applies all of the call's vectors to a
chunk while its graph is alive (a block of Hutch++ probes pays for one rebuild per chunk).
"""

from __future__ import annotations

import itertools
import math

import torch
import torch.nn.functional as F
from torch import nn

from lltax.data.sequences import target_count

__all__ = ["HessianOperator"]


class HessianOperator:
    """The Hessian of the mean cross-entropy of ``model`` on (inputs, targets), as a linear map.

    Vectors are flat tensors over the model's trainable parameters (in ``model.parameters()``
    order), of the parameters' dtype and device. The model is used as it is: put it in eval
    mode first (BatchNorm then uses its running statistics). The loss has no weight-decay term.

    Parameters
    ----------
    model : nn.Module
        The network; its trainable parameters are the Hessian's variables.
    inputs, targets : torch.Tensor
        The data sample (inputs of shape (N, ...), integer class targets of shape (N,)) on the
        model's device.
    chunk_size : int
        Samples per forward/backward pass.

    Attributes
    ----------
    dimension : int
        Number of trainable scalar parameters.
    hvp_count : int
        Hessian-vector products computed so far (each over the whole sample).
    """

    def __init__(self, model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, chunk_size: int = 200):
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be a positive number of samples, got {chunk_size}")
        if len(inputs) != len(targets) or len(inputs) == 0:
            raise ValueError(f"need as many targets as inputs, at least one; got {len(inputs)} inputs and {len(targets)} targets")
        self.model = model
        self.params = [p for p in model.parameters() if p.requires_grad]
        if not self.params:
            raise ValueError("the model has no trainable parameters (requires_grad); nothing to take a Hessian of")
        self._offsets = [0, *itertools.accumulate(p.numel() for p in self.params)]
        self.dimension = self._offsets[-1]
        self.dtype = self.params[0].dtype
        self.device = self.params[0].device
        self.num_samples = len(inputs)
        self.num_targets = target_count(targets)  # samples, or non-padding tokens of translation pairs
        self.chunks = [
            (inputs[start : start + chunk_size], targets[start : start + chunk_size]) for start in range(0, len(inputs), chunk_size)
        ]
        self.hvp_count = 0
        self._cached_gradient: list[torch.Tensor] | None = None

    def _chunk_gradient(self, inputs: torch.Tensor, targets: torch.Tensor) -> list[torch.Tensor]:
        """Gradient of this chunk's share of the mean loss, with its graph (create_graph)."""
        loss = F.cross_entropy(self.model(inputs), targets, reduction="sum") / self.num_targets
        return list(torch.autograd.grad(loss, self.params, create_graph=True, allow_unused=True, materialize_grads=True))

    def _apply(self, gradient: list[torch.Tensor], vectors: torch.Tensor, keep_graph: bool) -> torch.Tensor:
        """Columns of ``vectors`` (dimension, k) times this chunk's Hessian."""
        # A parameter the loss does not depend on has a constant (zero) gradient: no graph.
        used = [i for i, g in enumerate(gradient) if g.requires_grad]
        offsets = self._offsets
        products = torch.zeros_like(vectors)
        if not used:
            return products
        for column in range(vectors.shape[1]):
            vector = vectors[:, column].contiguous()
            pieces = [vector[offsets[i] : offsets[i + 1]].view_as(self.params[i]) for i in used]
            last = column == vectors.shape[1] - 1
            hv = torch.autograd.grad(
                [gradient[i] for i in used],
                self.params,
                grad_outputs=pieces,
                retain_graph=keep_graph or not last,
                allow_unused=True,
                materialize_grads=True,
            )
            products[:, column] = torch.cat([h.reshape(-1) for h in hv])
        return products

    def matmat(self, vectors: torch.Tensor) -> torch.Tensor:
        """H @ vectors for a (dimension, k) matrix of column vectors."""
        if vectors.ndim != 2 or vectors.shape[0] != self.dimension:
            raise ValueError(f"expected a (dimension={self.dimension}, k) matrix, got shape {tuple(vectors.shape)}")
        vectors = vectors.to(dtype=self.dtype, device=self.device)
        self.hvp_count += vectors.shape[1]
        if len(self.chunks) == 1:
            if self._cached_gradient is None:
                self._cached_gradient = self._chunk_gradient(*self.chunks[0])
            return self._apply(self._cached_gradient, vectors, keep_graph=True)
        total = torch.zeros_like(vectors)
        for inputs, targets in self.chunks:
            total += self._apply(self._chunk_gradient(inputs, targets), vectors, keep_graph=False)
        return total

    def matvec(self, vector: torch.Tensor) -> torch.Tensor:
        """H @ vector for a flat vector of length ``dimension``."""
        return self.matmat(vector.reshape(-1, 1)).reshape(-1)

    def loss(self) -> float:
        """The mean cross-entropy on the sample (no graph kept)."""
        with torch.no_grad():
            total = sum(F.cross_entropy(self.model(x), y, reduction="sum").item() for x, y in self.chunks)
        return total / self.num_targets if math.isfinite(total) else math.nan

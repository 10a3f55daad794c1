"""Bezier curves and polygonal chains in parameter space, on any registered architecture.

A curve between two trained models w0 and w2 with a middle bend w1 is the quadratic Bezier
curve of Garipov et al. 2018 ("Loss Surfaces, Mode Connectivity, and Fast Ensembling of DNNs")

    theta(t) = (1 - t)^2 w0 + 2 t (1 - t) w1 + t^2 w2,    t in [0, 1];

with more bends w0, ..., wn it is the Bezier curve of degree n (Bernstein weights), or with
``curve="polychain"`` the chain of straight segments through them.

The reference code (timgaripov/dnn-mode-connectivity, reused by Yang et al. 2021) rewrites every
layer class into a "curve" layer. Here the original module is kept and evaluated with
``torch.func.functional_call`` on the parameters of the curve point, so any model of
``lltax.models`` (or any ``nn.Module``) works unchanged. A bend is a dict from parameter name
(``model.named_parameters()``) to tensor; buffers (BatchNorm running statistics) are not part of
the curve: they are recomputed for each point (``recompute_batchnorm_statistics``). LayerNorm
(the ``transformer``) normalizes each token by its own statistics and keeps none: its curve
points need nothing recomputed (the function returns at once for a model without BatchNorm).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import torch
from torch import nn
from torch.func import functional_call

from lltax.training.model_mode import mode

__all__ = [
    "bezier_coefficients",
    "polychain_coefficients",
    "curve_point",
    "curve_forward",
    "point_forward",
    "flatten_bend",
    "unflatten_bend",
    "initial_middle_bend",
    "initial_inner_bends",
    "parameters_of",
    "load_parameters",
    "recompute_batchnorm_statistics",
]

Bend = dict[str, torch.Tensor]


CURVES = ("bezier", "polychain")


def _check_t(t: float) -> None:
    if not 0.0 <= t <= 1.0:
        raise ValueError(f"curve parameter t must lie in [0, 1], got {t}")


def bezier_coefficients(t: float, bends: int = 3) -> tuple[float, ...]:
    """Weights of the ``bends`` control points at ``t``: the Bernstein polynomials
    C(n, i) t^i (1 - t)^(n - i), n = bends - 1 (for 3: (1-t)^2, 2t(1-t), t^2); they sum to one."""
    _check_t(t)
    if bends < 2:
        raise ValueError(f"a curve has at least 2 bends (its two ends), got {bends}")
    degree = bends - 1
    return tuple(math.comb(degree, i) * t**i * (1.0 - t) ** (degree - i) for i in range(bends))


def polychain_coefficients(t: float, bends: int = 3) -> tuple[float, ...]:
    """Weights of the ``bends`` points of Garipov et al.'s PolyChain at ``t``: straight segments
    between consecutive bends, bend i at t = i / (bends - 1) (for 3: w0 -> w1 for t <= 1/2, then
    w1 -> w2)."""
    _check_t(t)
    if bends < 2:
        raise ValueError(f"a curve has at least 2 bends (its two ends), got {bends}")
    segments = bends - 1
    segment = min(int(t * segments), segments - 1)  # t = 1 belongs to the last segment
    local = t * segments - segment
    weights = [0.0] * bends
    weights[segment], weights[segment + 1] = 1.0 - local, local
    return tuple(weights)


def curve_point(bends: Sequence, t: float, curve: str = "bezier"):
    """Parameters theta(t) of the curve through ``bends`` = [w0, w1, ..., wn]: the Bezier curve
    with these control points (quadratic for three), or with ``curve="polychain"`` the polygonal
    chain through them.

    Bends are dicts of tensors (the result is a dict) or flat vectors (``flatten_bend``; the
    result is a vector). Differentiable with respect to bends that require grad (the inner
    ones while fitting).
    """
    if len(bends) < 3:
        raise ValueError(f"a curve has at least 3 bends (start, inner ones, end), got {len(bends)}")
    if curve not in CURVES:
        raise ValueError(f"unknown curve {curve!r}; choose one of {list(CURVES)}")
    weights = (bezier_coefficients if curve == "bezier" else polychain_coefficients)(t, len(bends))
    # Bends of weight 0 stay in the sum, so every trainable bend gets a (zero) gradient at every
    # step and its momentum and weight decay act as in the reference's optimizer.
    first, *rest = zip(weights, bends)
    if isinstance(bends[0], torch.Tensor):
        return sum((c * bend for c, bend in rest), first[0] * first[1])
    return {name: sum((c * bend[name] for c, bend in rest), first[0] * first[1][name]) for name in bends[0]}


def flatten_bend(bend: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """All tensors of a bend as one vector, in the dict's order (the layout ``unflatten_bend`` undoes)."""
    return torch.cat([value.reshape(-1) for value in bend.values()])


def unflatten_bend(vector: torch.Tensor, like: Mapping[str, torch.Tensor]) -> Bend:
    """Views of ``vector`` shaped and named as the tensors of ``like`` (inverse of ``flatten_bend``)."""
    chunks = vector.split([value.numel() for value in like.values()])
    return {name: chunk.view(value.shape) for (name, value), chunk in zip(like.items(), chunks)}


def curve_forward(
    model: nn.Module,
    flat_bends: Sequence[torch.Tensor],
    t: float,
    inputs: torch.Tensor,
    *,
    like: Mapping[str, torch.Tensor],
    buffers: Mapping[str, torch.Tensor] | None = None,
) -> torch.Tensor:
    """Output of ``model`` with the parameters of the curve point theta(t).

    ``flat_bends`` are the bends as vectors (``flatten_bend``), ``like`` a bend dict
    giving names and shapes. Flat vectors make theta(t) three vector operations per step
    instead of three per parameter tensor, and its backward one split: on a GPU every one of
    those is a kernel launch. ``buffers`` (e.g. scratch BatchNorm statistics) replace the
    module's own; in train mode BatchNorm updates them in place, so pass copies when the
    module's buffers must stay as they are.
    """
    return point_forward(model, curve_point(flat_bends, t), inputs, like=like, buffers=buffers)


def point_forward(
    model: nn.Module,
    flat_parameters: torch.Tensor,
    inputs: torch.Tensor,
    *,
    like: Mapping[str, torch.Tensor],
    buffers: Mapping[str, torch.Tensor] | None = None,
) -> torch.Tensor:
    """Output of ``model`` with the parameters ``flat_parameters`` (one vector laid out as
    ``like``), e.g. a curve point the caller also regularizes; ``buffers`` as in ``curve_forward``."""
    return functional_call(model, (unflatten_bend(flat_parameters, like), dict(buffers or {})), (inputs,))


def parameters_of(model: nn.Module) -> Bend:
    """Detached copies of a model's parameters, keyed by ``named_parameters`` names."""
    return {name: p.detach().clone() for name, p in model.named_parameters()}


@torch.no_grad()
def load_parameters(model: nn.Module, parameters: Mapping[str, torch.Tensor]) -> None:
    """Copy ``parameters`` into ``model`` in place (buffers untouched)."""
    own = dict(model.named_parameters())
    if set(own) != set(parameters):
        missing, unexpected = sorted(set(own) - set(parameters)), sorted(set(parameters) - set(own))
        raise ValueError(f"parameter names do not match the model: missing {missing}, unexpected {unexpected}")
    for name, p in own.items():
        p.copy_(parameters[name])


def initial_middle_bend(
    start: Mapping[str, torch.Tensor],
    end: Mapping[str, torch.Tensor],
    *,
    init: str = "midpoint",
    model_factory: Callable[[], nn.Module] | None = None,
    seed: int = 0,
) -> Bend:
    """Initial value of the trainable middle bend.

    Parameters
    ----------
    start, end : dict of tensors
        The fixed end bends (the two trained models' parameters).
    init : {"midpoint", "random"}
        ``midpoint`` = (w0 + w2) / 2, i.e. the curve starts as the straight line (the reference's
        ``init_linear``); ``random`` = a fresh initialization of the architecture, which is what
        Yang et al.'s ``Mode_connectivity.py`` ends up with (it never calls ``init_linear``).
    model_factory : callable, optional
        Builds a freshly initialized model of the same architecture; needed for ``random``.
    seed : int
        ``torch.manual_seed`` for ``random``; the global RNG state is restored afterwards.
    """
    if set(start) != set(end):
        raise ValueError("the two end models have different parameter names; connect models of one architecture")
    if init == "midpoint":
        return {name: (start[name] + end[name]) / 2 for name in start}
    if init == "random":
        if model_factory is None:
            raise ValueError("init='random' needs model_factory, a function that builds a fresh model of the architecture")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            fresh = parameters_of(model_factory())
        if set(fresh) != set(start):
            raise ValueError("model_factory builds a model whose parameter names differ from the end models'")
        return {name: fresh[name].to(device=start[name].device, dtype=start[name].dtype) for name in start}
    raise ValueError(f"unknown middle bend init {init!r}; choose 'midpoint' or 'random'")


def initial_inner_bends(
    start: Mapping[str, torch.Tensor],
    end: Mapping[str, torch.Tensor],
    count: int = 1,
    *,
    init: str = "midpoint",
    model_factory: Callable[[], nn.Module] | None = None,
    seed: int = 0,
) -> list[Bend]:
    """Initial values of the ``count`` trainable inner bends of a curve from ``start`` to ``end``.

    ``midpoint``: evenly spaced on the straight line, bend k at k / (count + 1), so the Bezier
    curve and the PolyChain both start as the line (a Bezier curve with control points evenly
    spaced on a line is that line, traversed uniformly); one inner bend is the midpoint.
    ``random``: a fresh initialization per bend, seeds ``seed``, ``seed + 1``, ...
    """
    if count < 1:
        raise ValueError(f"a curve needs at least one inner bend, got {count}")
    if init == "midpoint":
        if set(start) != set(end):
            raise ValueError("the two end models have different parameter names; connect models of one architecture")
        fractions = [k / (count + 1) for k in range(1, count + 1)]
        return [{name: (1 - a) * start[name] + a * end[name] for name in start} for a in fractions]
    return [initial_middle_bend(start, end, init=init, model_factory=model_factory, seed=seed + k) for k in range(count)]


def _batchnorm_modules(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    # Only layers that keep running statistics use them in eval mode.
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]


@torch.no_grad()
def recompute_batchnorm_statistics(model: nn.Module, inputs: torch.Tensor, batch_size: int = 128) -> None:
    """Replace BatchNorm running statistics by their average over ``inputs``, in place.

    A curve point's weights never met the end models' statistics, so they are recomputed at
    every t (Garipov et al. 2018; the reference's ``update_bn``): statistics are
    reset, then ``inputs`` are forwarded in train mode in batches, each batch weighted by its
    size (momentum b / (n + b)); with equal batches this is PyTorch's cumulative average
    (momentum=None), and a partial last batch gets its fair weight. The model's mode and the
    layers' momenta are restored afterwards.
    """
    layers = _batchnorm_modules(model)
    if not layers:
        return
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    momenta = [layer.momentum for layer in layers]
    with mode(model, training=True):
        for layer in layers:
            layer.reset_running_stats()
        seen = 0
        try:
            for first in range(0, len(inputs), batch_size):
                batch = inputs[first : first + batch_size]
                for layer in layers:
                    layer.momentum = len(batch) / (seen + len(batch))
                model(batch)
                seen += len(batch)
        finally:
            for layer, momentum in zip(layers, momenta):
                layer.momentum = momentum

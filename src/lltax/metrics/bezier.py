"""Quadratic Bezier curves in parameter space, on any registered architecture.

A curve between two trained models w0 and w2 with a middle bend w1 is the quadratic Bezier
curve of Garipov et al. 2018 ("Loss Surfaces, Mode Connectivity, and Fast Ensembling of DNNs")

    theta(t) = (1 - t)^2 w0 + 2 t (1 - t) w1 + t^2 w2,    t in [0, 1].

The reference code (timgaripov/dnn-mode-connectivity, reused by Yang et al. 2021) rewrites every
layer class into a "curve" layer. Here the original module is kept and evaluated with
``torch.func.functional_call`` on the parameters of the curve point, so any model of
``lltax.models`` (or any ``nn.Module``) works unchanged. A bend is a dict from parameter name
(``model.named_parameters()``) to tensor; buffers (BatchNorm running statistics) are not part of
the curve: they are recomputed for each point (``recompute_batchnorm_statistics``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
from torch import nn
from torch.func import functional_call

from lltax.modes import mode

__all__ = [
    "bezier_coefficients",
    "polychain_coefficients",
    "curve_point",
    "curve_forward",
    "point_forward",
    "flatten_bend",
    "unflatten_bend",
    "initial_middle_bend",
    "parameters_of",
    "load_parameters",
    "recompute_batchnorm_statistics",
]

Bend = dict[str, torch.Tensor]


CURVES = ("bezier", "polychain")


def bezier_coefficients(t: float) -> tuple[float, float, float]:
    """Weights of the three bends at ``t``: ((1-t)^2, 2t(1-t), t^2); they sum to one."""
    if not 0.0 <= t <= 1.0:
        raise ValueError(f"curve parameter t must lie in [0, 1], got {t}")
    return (1.0 - t) ** 2, 2.0 * t * (1.0 - t), t**2


def polychain_coefficients(t: float) -> tuple[float, float, float]:
    """Weights of the three bends of Garipov et al.'s PolyChain at ``t``: two straight segments,
    w0 -> w1 for t <= 1/2 and w1 -> w2 after (w1 at t = 1/2)."""
    if not 0.0 <= t <= 1.0:
        raise ValueError(f"curve parameter t must lie in [0, 1], got {t}")
    return (1.0 - 2.0 * t, 2.0 * t, 0.0) if t <= 0.5 else (0.0, 2.0 - 2.0 * t, 2.0 * t - 1.0)


def curve_point(bends: Sequence, t: float, curve: str = "bezier"):
    """Parameters theta(t) of the curve through ``bends`` = [w0, w1, w2]: the quadratic Bezier
    curve, or with ``curve="polychain"`` the two-segment polygonal chain through w1.

    Bends are dicts of tensors (the result is a dict) or flat vectors (``flatten_bend``; the
    result is a vector). Differentiable with respect to a bend that requires grad (the middle
    one while fitting).
    """
    if len(bends) != 3:
        raise ValueError(f"a curve has 3 bends (start, middle, end), got {len(bends)}")
    if curve not in CURVES:
        raise ValueError(f"unknown curve {curve!r}; choose one of {list(CURVES)}")
    start, middle, end = bends
    c0, c1, c2 = bezier_coefficients(t) if curve == "bezier" else polychain_coefficients(t)
    if isinstance(start, torch.Tensor):
        return c0 * start + c1 * middle + c2 * end
    return {name: c0 * start[name] + c1 * middle[name] + c2 * end[name] for name in start}


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

    ``flat_bends`` are the three bends as vectors (``flatten_bend``), ``like`` a bend dict
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

"""Model registry: width-scaled networks, one constructor per name.

Every constructor takes ``(width, num_classes, input_shape)``; ``width`` is the base width k
(the grid axis ``width``), ``input_shape`` the per-sample shape, e.g. (3, 32, 32) or (1, 40).

=========  ===================================================  ==============================
name       layout                                               input shape
=========  ===================================================  ==============================
resnet18   CIFAR ResNet18, channels k, 2k, 4k, 8k, BatchNorm    (C, H, W)
resnet1d   1D ResNet, one block per stage, k, 2k, 4k, BN       (C, L), e.g. MNIST-1D (1, 40)
resnet1d_D depth D = 6n + 2 (n blocks per stage), D in 8, 20,   (C, L)
           56; resnet1d_D_noshort: no shortcuts
vgg11      VGG11-BN, channels k, 2k, 4k, 4k, 8k x 4             (C, H, W)
mlp        2 hidden ReLU layers of width k                      any (flattened)
transformer encoder-decoder, embedding dimension k (model.options:  (2, L) token pairs
           layers, heads, feedforward, dropout, tied_embeddings)  (lltax.data.sequences)
=========  ===================================================  ==============================

``options`` (config key ``model.options``) are keyword arguments of the builder: only
``transformer`` takes any (lltax.models.transformer says which and why its defaults).

Your own model needs no edit here: ``model.name: "package.module:function"`` names an
importable builder with the same signature ``(width, num_classes, input_shape) -> nn.Module``
(the module must be importable by every job, e.g. installed or on ``PYTHONPATH``). lltax cannot
see whether its forward pass is piecewise linear (a functional ``F.gelu`` is invisible to a
module walk), so the exact Hessian trace is used for it only if the builder asserts it with
the attribute ``piecewise_linear = True``; otherwise ``trace_method: auto`` takes Hutch++.
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable, Sequence

from torch import nn

from lltax.config.builders import import_builder
from lltax.contract import RESNET1D_DEPTHS, resnet1d_variant
from lltax.models.mlp import mlp
from lltax.models.resnet import resnet18
from lltax.models.resnet1d import resnet1d
from lltax.models.transformer import transformer
from lltax.models.vgg import vgg11

__all__ = ["MODELS", "PIECEWISE_LINEAR_MODELS", "build_model", "is_piecewise_linear", "count_parameters", "resnet1d_variant"]

MODELS: dict[str, Callable[[int, int, Sequence[int]], nn.Module]] = {
    "resnet18": resnet18,
    "resnet1d": resnet1d,
    "vgg11": vgg11,
    "mlp": mlp,
    "transformer": transformer,
}
# Li et al. 2018's skip-connection study on MNIST-1D: 1D ResNets of depth 6n + 2 with and
# without shortcuts (resnet1d_8 is resnet1d).
for _depth in RESNET1D_DEPTHS:
    MODELS[f"resnet1d_{_depth}"] = functools.partial(resnet1d, depth=_depth)
    MODELS[f"resnet1d_{_depth}_noshort"] = functools.partial(resnet1d, depth=_depth, residual=False)

# Models built only from linear/conv layers, ReLU, max/average pooling, residual sums and
# BatchNorm, which is affine in eval mode. Within a ReLU/max-pool region such a network is
# linear in each layer's parameters (each parameter enters the output once, linearly), so its
# second derivative along any single parameter is zero and the Hessian diagonal equals the
# Gauss-Newton diagonal: tr(H) = tr(GGN), exact without random probes. Not true for BatchNorm
# in train mode (batch statistics depend on the weights) or for smooth activations.
PIECEWISE_LINEAR_MODELS = frozenset({"resnet18", "resnet1d", "vgg11", "mlp", *(name for name in MODELS if name.startswith("resnet1d_"))})


def _builder(name: str) -> Callable[[int, int, Sequence[int]], nn.Module]:
    if name in MODELS:
        return MODELS[name]
    return import_builder("model", name, MODELS)


def _check_name(name: str) -> None:
    _builder(name)


def build_model(name: str, width: int, num_classes: int, input_shape: Sequence[int], options: dict | None = None) -> nn.Module:
    """Build model ``name`` with base width ``width`` (PyTorch default initialization).

    ``options``: the builder's keyword arguments (config key ``model.options``), e.g. a
    transformer's ``layers`` and ``heads``; an option the builder does not take is an error.

    Seed with ``torch.manual_seed`` before calling for a reproducible initialization.

    Raises
    ------
    ValueError
        Unknown name, width or num_classes not a positive integer, or an input shape the
        model cannot take.
    """
    _check_name(name)
    for key, value in (("width", width), ("num_classes", num_classes)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"model {key} must be an integer >= 1, got {value!r}")
    input_shape = tuple(input_shape)
    if not input_shape or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in input_shape):
        raise ValueError(f"input_shape must be a non-empty per-sample shape of positive integers, e.g. (3, 32, 32); got {input_shape!r}")
    builder = _builder(name)
    options = dict(options or {})
    if name in MODELS:
        accepted = set(inspect.signature(builder).parameters) - {"width", "num_classes", "input_shape"}
        unknown = sorted(set(options) - accepted)
        if unknown:
            raise ValueError(f"model {name!r} takes no option(s) {unknown} (model.options); it takes {sorted(accepted) or 'none'}")
        return builder(width, num_classes, input_shape, **options)
    # Your own builder: what it raises or returns is named in one line, before any training.
    try:
        model = builder(width, num_classes, input_shape, **options)
    except Exception as e:
        raise ValueError(
            f"model builder {name!r} raised {type(e).__name__} for width {width}, {num_classes} classes, input shape {input_shape}: {e}"
        ) from e
    if not isinstance(model, nn.Module):
        raise ValueError(f"model builder {name!r} returned {type(model).__name__}, not a torch.nn.Module")
    _check_output(model, name, num_classes, input_shape)
    return model


def _check_output(model: nn.Module, name: str, num_classes: int, input_shape: tuple[int, ...]) -> None:
    """One eval-mode forward pass of two zero inputs must give (2, num_classes) logits."""
    import torch

    from lltax.training.model_mode import mode

    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    try:  # fork_rng: a model that draws in its forward pass leaves the global stream as it was
        with torch.no_grad(), torch.random.fork_rng(devices=[]), mode(model, training=False):
            logits = model(torch.zeros(2, *input_shape, device=device))
    except Exception as e:
        raise ValueError(
            f"model builder {name!r}: its model fails on inputs of shape (batch, *{input_shape}): {type(e).__name__}: {e}"
        ) from e
    if not isinstance(logits, torch.Tensor) or tuple(logits.shape) != (2, num_classes):
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ValueError(
            f"model builder {name!r}: its model maps inputs of shape (2, *{input_shape}) to {shape}, "
            f"not to (2, {num_classes}) logits for the dataset's {num_classes} classes"
        )


def is_piecewise_linear(name: str) -> bool:
    """True when the Hessian diagonal of model ``name`` (eval mode) equals its Gauss-Newton diagonal.

    Built-in models: known. An external builder: only if it says so (``piecewise_linear = True``).
    """
    builder = _builder(name)
    if name in MODELS:
        return name in PIECEWISE_LINEAR_MODELS
    return getattr(builder, "piecewise_linear", False) is True


def count_parameters(model: nn.Module) -> int:
    """Number of trainable scalar parameters."""
    return sum(math.prod(p.shape) for p in model.parameters() if p.requires_grad)

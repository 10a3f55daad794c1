"""Model registry: width-scaled networks, one constructor per name.

Every constructor takes ``(width, num_classes, input_shape)``; ``width`` is the base width k
(the grid axis ``width``), ``input_shape`` the per-sample shape, e.g. (3, 32, 32) or (1, 40).

=========  ===================================================  ==============================
name       layout                                               input shape
=========  ===================================================  ==============================
resnet18   CIFAR ResNet18, channels k, 2k, 4k, 8k, BatchNorm    (C, H, W)
resnet1d   1D ResNet, one block per stage, k, 2k, 4k, BN       (C, L), e.g. MNIST-1D (1, 40)
vgg11      VGG11-BN, channels k, 2k, 4k, 4k, 8k x 4             (C, H, W)
mlp        2 hidden ReLU layers of width k                      any (flattened)
=========  ===================================================  ==============================
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from torch import nn

from lltax.models.mlp import mlp
from lltax.models.resnet import resnet18
from lltax.models.resnet1d import resnet1d
from lltax.models.vgg import vgg11

__all__ = ["MODELS", "PIECEWISE_LINEAR_MODELS", "build_model", "is_piecewise_linear", "count_parameters"]

MODELS: dict[str, Callable[[int, int, Sequence[int]], nn.Module]] = {
    "resnet18": resnet18,
    "resnet1d": resnet1d,
    "vgg11": vgg11,
    "mlp": mlp,
}

# Models built only from linear/conv layers, ReLU, max/average pooling, residual sums and
# BatchNorm, which is affine in eval mode. Within a ReLU/max-pool region such a network is
# linear in each layer's parameters (each parameter enters the output once, linearly), so its
# second derivative along any single parameter is zero and the Hessian diagonal equals the
# Gauss-Newton diagonal: tr(H) = tr(GGN), exact without random probes. Not true for BatchNorm
# in train mode (batch statistics depend on the weights) or for smooth activations.
PIECEWISE_LINEAR_MODELS = frozenset({"resnet18", "resnet1d", "vgg11", "mlp"})


def _check_name(name: str) -> None:
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(MODELS)}")


def build_model(name: str, width: int, num_classes: int, input_shape: Sequence[int]) -> nn.Module:
    """Build model ``name`` with base width ``width`` (PyTorch default initialization).

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
    return MODELS[name](width, num_classes, input_shape)


def is_piecewise_linear(name: str) -> bool:
    """True when the Hessian diagonal of model ``name`` (eval mode) equals its Gauss-Newton diagonal."""
    _check_name(name)
    return name in PIECEWISE_LINEAR_MODELS


def count_parameters(model: nn.Module) -> int:
    """Number of trainable scalar parameters."""
    return sum(math.prod(p.shape) for p in model.parameters() if p.requires_grad)

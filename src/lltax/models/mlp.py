"""Fully connected ReLU network on flattened inputs, hidden width k.

Two hidden layers by default, as the MLP baseline of MNIST-1D (Greydanus 2020). No
BatchNorm. Initialization is PyTorch's default.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import nn

HIDDEN_LAYERS = 2


def mlp(width: int, num_classes: int, input_shape: Sequence[int], hidden_layers: int = HIDDEN_LAYERS) -> nn.Sequential:
    """Flatten -> [Linear(., k) -> ReLU] x hidden_layers -> Linear(k, num_classes).

    Any per-sample input shape works; it is flattened to prod(input_shape) features.
    """
    if hidden_layers < 1:
        raise ValueError(f"mlp needs at least one hidden layer, got hidden_layers={hidden_layers}")
    layers: list[nn.Module] = [nn.Flatten()]
    features = math.prod(input_shape)
    for _ in range(hidden_layers):
        layers += [nn.Linear(features, width), nn.ReLU()]
        features = width
    layers.append(nn.Linear(features, num_classes))
    return nn.Sequential(*layers)

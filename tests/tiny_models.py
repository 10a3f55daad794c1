"""Small models the numerics tests share: exact answers (dense Hessians, hand-built
interpolations) are cheap on them in float64."""

import torch
from torch import nn


def tiny_mlp(*sizes: int, seed: int | None = None, dtype: torch.dtype = torch.float64) -> nn.Sequential:
    """Flatten, then Linear layers of ``sizes`` (inputs, hidden..., outputs) with ReLU between,
    in ``dtype`` and eval mode; initialized from ``seed`` when given (else the global generator)."""
    if seed is not None:
        torch.manual_seed(seed)
    layers: list[nn.Module] = [nn.Flatten()]
    for index, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers += [nn.Linear(a, b)] + ([nn.ReLU()] if index < len(sizes) - 2 else [])
    return nn.Sequential(*layers).to(dtype).eval()

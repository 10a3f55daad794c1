"""Width-scaled VGG11 with BatchNorm (Simonyan & Zisserman 2015, configuration "A").

Conv channels (k, 2k, 4k, 4k, 8k, 8k, 8k, 8k) with a 2x2 max-pool after the 1st, 2nd, 4th,
6th and 8th conv; k=64 gives the standard VGG11 widths. Each conv is 3x3 -> BatchNorm -> ReLU
without conv bias (the BatchNorm shift makes it redundant; kuangliu/pytorch-cifar keeps it,
which adds 43 k parameters). The head is global average pooling and one linear layer, as in
CIFAR VGGs. Max-pools round up (ceil_mode) and the average pool is adaptive, so inputs smaller
than 32x32 (e.g. 28x28 MNIST) work too; on 32x32 this is the usual 1x1 map before the head.
Initialization is PyTorch's default.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

# Multiples of k; "M" = 2x2 max-pool.
VGG11_LAYOUT = (1, "M", 2, "M", 4, 4, "M", 8, 8, "M", 8, 8, "M")


class VGG(nn.Module):
    """VGG feature stack from a layout of channel multiples and "M" pools, then a linear head."""

    def __init__(self, width: int, num_classes: int, in_channels: int, layout: Sequence[int | str] = VGG11_LAYOUT):
        super().__init__()
        layers: list[nn.Module] = []
        channels = in_channels
        for item in layout:
            if item == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2, ceil_mode=True))
            else:
                out_channels = width * item
                layers += [nn.Conv2d(channels, out_channels, kernel_size=3, padding=1, bias=False), nn.BatchNorm2d(out_channels), nn.ReLU()]
                channels = out_channels
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.linear = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(torch.flatten(self.pool(self.features(x)), 1))


def vgg11(width: int, num_classes: int, input_shape: Sequence[int]) -> VGG:
    """VGG11-BN for images of shape (C, H, W); 2250 k^2 + (86 + 9 C + 8 classes) k + classes parameters."""
    if len(input_shape) != 3:
        raise ValueError(
            f"vgg11 takes images of per-sample shape (channels, height, width), got input_shape {tuple(input_shape)}; "
            "use resnet1d or mlp for 1D data"
        )
    return VGG(width, num_classes, in_channels=input_shape[0])

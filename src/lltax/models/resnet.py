"""Width-scaled ResNet (He et al. 2016) for small images, in 2D and 1D.

ResNet18 here is the model of Yang et al.'s reference code (``models/resnet_width.py`` of
nsfzyzz/loss_landscape_taxonomy, itself kuangliu/pytorch-cifar): CIFAR stem (3x3 conv,
stride 1, no max-pool), BasicBlocks [2, 2, 2, 2] with stage channels (k, 2k, 4k, 8k),
BatchNorm, global average pooling and a linear head. Attribute names follow that code
(``conv1``, ``bn1``, ``layer1``..``layer4``, ``linear``, blocks with ``shortcut``), so the
paper's state dicts load into it. Initialization is PyTorch's default.

The same class with ``dimensions=1`` and fewer blocks gives the 1D ResNet for MNIST-1D
(``resnet1d.py``). Global pooling is adaptive, so any input size works (the reference pools
4x4, which is the same thing on 32x32 inputs).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

# Convolution and BatchNorm classes per number of spatial dimensions.
_LAYERS = {
    1: (nn.Conv1d, nn.BatchNorm1d, nn.AdaptiveAvgPool1d),
    2: (nn.Conv2d, nn.BatchNorm2d, nn.AdaptiveAvgPool2d),
}


class BasicBlock(nn.Module):
    """Two 3-wide convolutions with BatchNorm and an identity (or 1-wide conv) shortcut; with
    ``residual=False`` no shortcut at all (Li et al. 2018's "no-short" networks)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, dimensions: int = 2, residual: bool = True):
        super().__init__()
        conv, batch_norm, _ = _LAYERS[dimensions]
        # No conv biases: the BatchNorm shift that follows makes them redundant.
        self.conv1 = conv(in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn1 = batch_norm(out_channels)
        self.conv2 = conv(out_channels, out_channels, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn2 = batch_norm(out_channels)
        self.relu = nn.ReLU()
        self.residual = residual
        self.shortcut = nn.Sequential()
        if residual and (stride != 1 or in_channels != out_channels):
            self.shortcut = nn.Sequential(
                conv(in_channels, out_channels, kernel_size=1, stride=stride, bias=False),
                batch_norm(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if not self.residual:
            return self.relu(out)
        # The reference's `out += self.shortcut(x)`, written out-of-place.
        return self.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    """ResNet with stage channels (k, 2k, 4k, 8k, ...), stride 2 entering every stage but the first.

    Parameters
    ----------
    width : int
        Base width k (channels of the stem and the first stage).
    num_classes : int
        Number of outputs (logits).
    in_channels : int
        Channels of the input.
    blocks_per_stage : sequence of ints
        BasicBlocks in each stage (one stage per entry; stage i has k * 2**i channels);
        (2, 2, 2, 2) is ResNet18.
    dimensions : int
        1 for sequences (N, C, L), 2 for images (N, C, H, W).
    residual : bool
        False removes every shortcut connection (the same network as a plain deep convnet).
    """

    def __init__(
        self,
        width: int,
        num_classes: int,
        in_channels: int,
        blocks_per_stage: Sequence[int] = (2, 2, 2, 2),
        dimensions: int = 2,
        residual: bool = True,
    ):
        super().__init__()
        conv, batch_norm, global_pool = _LAYERS[dimensions]
        self.conv1 = conv(in_channels, width, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = batch_norm(width)
        self.relu = nn.ReLU()
        stages = []
        channels = width
        for index, num_blocks in enumerate(blocks_per_stage):
            stage_channels = width * 2**index
            blocks = []
            for block_index in range(num_blocks):
                stride = 2 if index > 0 and block_index == 0 else 1
                blocks.append(BasicBlock(channels, stage_channels, stride, dimensions, residual))
                channels = stage_channels
            stages.append(nn.Sequential(*blocks))
        # Named layer1, layer2, ... as in the reference code, so its state dicts load.
        self.stage_names = [f"layer{index + 1}" for index in range(len(stages))]
        for name, stage in zip(self.stage_names, stages):
            self.add_module(name, stage)
        self.pool = global_pool(1)
        self.linear = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        for name in self.stage_names:
            out = getattr(self, name)(out)
        return self.linear(torch.flatten(self.pool(out), 1))


def resnet18(width: int, num_classes: int, input_shape: Sequence[int]) -> ResNet:
    """ResNet18 for images of shape (C, H, W); 11,173,962 parameters at k=64, C=3, 10 classes."""
    if len(input_shape) != 3:
        raise ValueError(
            f"resnet18 takes images of per-sample shape (channels, height, width), got input_shape {tuple(input_shape)}; "
            "use resnet1d or mlp for 1D data"
        )
    return ResNet(width, num_classes, in_channels=input_shape[0], blocks_per_stage=(2, 2, 2, 2), dimensions=2)

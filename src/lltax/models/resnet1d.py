"""1D ResNet for MNIST-1D (inputs (1, 40)): ResNet18's layout with one block per stage.

Same width semantics as ResNet18 (stem and stage channels k, 2k, 4k, 8k; strides 1, 2, 2, 2;
BatchNorm; global average pooling; linear head) with one BasicBlock per stage instead of two
(a "ResNet10"), so that the offline demo grid trains on a laptop CPU: see the measured
seconds per epoch in the README. Sequence length 40 becomes 40, 20, 10, 5 across the stages.
"""

from __future__ import annotations

from collections.abc import Sequence

from lltax.models.resnet import ResNet

BLOCKS_PER_STAGE = (1, 1, 1, 1)


def resnet1d(width: int, num_classes: int, input_shape: Sequence[int]) -> ResNet:
    """1D ResNet for sequences of per-sample shape (C, L); 426 k^2 + (90 + 3 C + 8 classes) k + classes parameters."""
    if len(input_shape) != 2:
        raise ValueError(
            f"resnet1d takes sequences of per-sample shape (channels, length), e.g. (1, 40) for MNIST-1D; "
            f"got input_shape {tuple(input_shape)}"
        )
    return ResNet(width, num_classes, in_channels=input_shape[0], blocks_per_stage=BLOCKS_PER_STAGE, dimensions=1)

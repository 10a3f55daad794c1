"""1D ResNet for MNIST-1D (inputs (1, 40)): ResNet18's layout, shallower so it trains on a CPU.

Same width semantics and parts as ResNet18 (3-wide stem conv with stride 1, BasicBlocks with
BatchNorm, stride 2 entering each later stage, global average pooling, linear head) but three
stages of one block each, with channels (k, 2k, 4k); sequence length 40 becomes 40, 20, 10.
Why this depth: on the 2-core dev VM a fourth (8k) stage doubled the seconds per epoch at
k >= 16, and a stride-2 stem was cheaper but lost ~10 points of test accuracy at k = 4. In
one run each (20 epochs, batch 64, lr 0.05) this model reached 84, 95, 97 and 96 % MNIST-1D
test accuracy at k = 2, 4, 8, 16 (604 to 28,506 parameters). Seconds per epoch are in the
README. Initialization is PyTorch's default.
"""

from __future__ import annotations

from collections.abc import Sequence

from lltax.models.resnet import ResNet

BLOCKS_PER_STAGE = (1, 1, 1)


def resnet1d(width: int, num_classes: int, input_shape: Sequence[int], depth: int = 8, residual: bool = True) -> ResNet:
    """1D ResNet for per-sample shape (C, L); 106 k^2 + (42 + 3 C + 4 num_classes) k + num_classes parameters
    at the default depth 8.

    ``depth`` counts the weight layers as Li et al. 2018's CIFAR ResNet-20/56/110 do: 6n + 2 with
    n blocks per stage (8 = one block per stage); ``residual=False`` drops every shortcut.
    """
    if depth < 8 or (depth - 2) % 6:
        raise ValueError(f"resnet1d depth must be 6n + 2 with n >= 1 blocks per stage (8, 14, 20, 26, ..., 56, 110), got {depth}")
    if len(input_shape) != 2:
        raise ValueError(
            f"resnet1d takes sequences of per-sample shape (channels, length), e.g. (1, 40) for MNIST-1D; "
            f"got input_shape {tuple(input_shape)}"
        )
    blocks = ((depth - 2) // 6,) * len(BLOCKS_PER_STAGE)
    return ResNet(width, num_classes, in_channels=input_shape[0], blocks_per_stage=blocks, dimensions=1, residual=residual)

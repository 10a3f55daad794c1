"""Augmentation of image batches on their device: random crops with zero padding and random
horizontal flips (the standard CIFAR augmentation), drawn from an explicit generator.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def augment_batch(x: torch.Tensor, generator: torch.Generator, padding: int = 4) -> torch.Tensor:
    """Random crop with zero padding plus random horizontal flip, per sample, for image batches.

    The standard CIFAR augmentation (``RandomCrop(32, padding=4)`` then
    ``RandomHorizontalFlip()``), vectorized on the batch's device. The padding is zero in
    normalized units (the mean colour), not black as when torchvision pads before normalizing.
    Batches of 1D data (3D tensors, (N, C, L)) are returned unchanged, drawing nothing.
    ``augment_batch(x, g) == apply_augmentation(x, draw_augmentation(len(x), g))``: the training
    loop draws an epoch's numbers up front with the latter two (same numbers, one transfer).

    Parameters
    ----------
    x : torch.Tensor
        (N, C, H, W) images, or (N, C, L) sequences.
    generator : torch.Generator
        Source of all randomness (on any device); same generator state, same output.
    padding : int
        Maximum shift in pixels.
    """
    if x.dim() == 3:
        return x
    _check_image_batch(x)
    return apply_augmentation(x, draw_augmentation(len(x), generator, padding), padding)


def _check_image_batch(x: torch.Tensor) -> None:
    if x.dim() != 4:
        raise ValueError(f"augment_batch expects (N, C, H, W) images or (N, C, L) sequences, got shape {tuple(x.shape)}")


def draw_augmentation(num: int, generator: torch.Generator, padding: int = 4) -> torch.Tensor:
    """The random numbers of ``augment_batch`` for ``num`` images: (3, num) int64 rows
    (vertical shift, horizontal shift, flip), drawn in ``augment_batch``'s order."""
    shifts = torch.randint(0, 2 * padding + 1, (2, num), generator=generator, device=generator.device)
    flips = torch.randint(0, 2, (num,), generator=generator, device=generator.device)
    return torch.cat([shifts, flips[None]])


def apply_augmentation(x: torch.Tensor, draws: torch.Tensor, padding: int = 4) -> torch.Tensor:
    """Crop and flip each image of ``x`` (N, C, H, W) as ``draws`` (3, N) (``draw_augmentation``) say."""
    _check_image_batch(x)
    num, _, height, width = x.shape
    draws = draws.to(x.device)
    flips = draws[2].to(torch.bool)
    padded = F.pad(x, (padding, padding, padding, padding))
    rows = draws[0, :, None] + torch.arange(height, device=x.device)
    columns = torch.arange(width, device=x.device).expand(num, width)
    columns = torch.where(flips[:, None], width - 1 - columns, columns) + draws[1, :, None]
    # Advanced indices separated by a slice come first: the result is (N, H, W, C).
    samples = torch.arange(num, device=x.device)[:, None, None]
    return padded[samples, :, rows[:, :, None], columns[:, None, :]].permute(0, 3, 1, 2).contiguous()

"""A synthetic CIFAR-shaped dataset, generated in memory: no download, no files, no extra package.

Named in a config as ``dataset.name: lltax.data.synthetic:cifar_shaped`` (a builder for
``lltax.data.loaders.load_external``). Used by ``benchmarks/gpu_check.py`` to run a grid cell through
every job on a machine without CIFAR-10 or network, and usable for quick experiments of your own.

Each class c has a fixed random 3x32x32 template; an image is its class's template plus
Gaussian noise, so the classes are learnable but not trivially separable. The same call gives
the same tensors on every machine (one CPU generator, fixed seed).
"""

from __future__ import annotations

import torch

NUM_CLASSES = 10
INPUT_SHAPE = (3, 32, 32)


def cifar_images(num: int, generator: torch.Generator, templates: torch.Tensor, noise: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """``num`` images (float32, (num, 3, 32, 32), roughly zero-mean unit-variance) and labels."""
    labels = torch.randint(0, len(templates), (num,), generator=generator)
    images = templates[labels] + noise * torch.randn(num, *templates.shape[1:], generator=generator)
    return images / (1.0 + noise * noise) ** 0.5, labels


def cifar_shaped(
    root: str | None = None, download: bool = False, *, num_train: int = 512, num_test: int = 256, seed: int = 0, noise: float = 1.0
) -> dict:
    """CIFAR-10-shaped data: ``num_train`` / ``num_test`` images 3x32x32, 10 classes, normalized.

    ``root`` and ``download`` are the builder contract's arguments (``load_external``); nothing
    is read or written.
    """
    generator = torch.Generator().manual_seed(seed)
    templates = torch.randn(NUM_CLASSES, *INPUT_SHAPE, generator=generator)
    x_train, y_train = cifar_images(num_train, generator, templates, noise)
    x_test, y_test = cifar_images(num_test, generator, templates, noise)
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test, "num_classes": NUM_CLASSES}


def cifar_shaped_tiny(root: str | None = None, download: bool = False) -> dict:
    """``cifar_shaped`` with 128 training and 64 test images (a CPU smoke run of every job)."""
    return cifar_shaped(root, download, num_train=128, num_test=64)

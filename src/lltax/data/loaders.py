"""Dataset loaders: each returns a whole dataset as tensors (``Dataset``), inputs normalized.

Datasets (``DATASETS``):

- ``mnist1d``: generated locally by the ``mnist1d`` package (Greydanus 2020) with its default
  arguments (4000 train / 1000 test, 10 classes, inputs (1, 40)) and cached under
  ``<root>/mnist1d/``; never downloaded.
- ``cifar10``, ``cifar100``, ``svhn``, ``mnist``: torchvision's loaders on ``root``, images as
  float32 (N, C, H, W) normalized per channel. MNIST is zero-padded from 28x28 to 32x32 (as
  LeNet-5 did) so that every image model sees 32x32 inputs: ResNet18's 3x3 stem and VGG11's
  five 2x2 poolings are then identical to CIFAR's. SVHN uses its ``train`` split (not
  ``extra``).
- your own builder by import path (``load_external``), checked for shape, labels and finiteness.

A grid cell's data (its subset and label noise) is made from these by ``lltax.data.cells``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path

import torch
import torch.nn.functional as F

from lltax.config.builders import import_builder
from lltax.data.dataset import Dataset
from lltax.data.mnist1d import mnist1d_arrays

logger = logging.getLogger(__name__)

# Per-channel (mean, std) of the training images in [0, 1]. CIFAR-10's are the ones of the
# reference code of Yang et al. 2021 (nsfzyzz/loss_landscape_taxonomy, code/data.py), which
# inherited the widely copied std (0.2023, 0.1994, 0.2010) from kuangliu/pytorch-cifar.
NORMALIZATION = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "svhn": ((0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970)),
    "mnist": ((0.1307,), (0.3081,)),
}


def _clean_dataset(name: str, x_train, y_train, x_test, y_test, num_classes: int) -> Dataset:
    x_train = torch.as_tensor(x_train, dtype=torch.float32)
    y_train = torch.as_tensor(y_train, dtype=torch.int64)
    return Dataset(
        name=name,
        x_train=x_train,
        y_train=y_train,
        y_train_clean=y_train.clone(),
        x_test=torch.as_tensor(x_test, dtype=torch.float32),
        y_test=torch.as_tensor(y_test, dtype=torch.int64),
        num_classes=num_classes,
        input_shape=tuple(x_train.shape[1:]),
    )


# ---------------------------------------------------------------------------------------------
# MNIST-1D: generated locally, cached (lltax.data.mnist1d)


def load_mnist1d(root: str | Path, download: bool = False) -> Dataset:
    """MNIST-1D with the package's default arguments; generated once, then read from the cache.

    ``download`` is ignored: the data is always generated locally, never downloaded.
    """
    x, y, x_test, y_test = mnist1d_arrays(root)
    # (N, 40) -> (N, 1, 40): one input channel for Conv1d models.
    return _clean_dataset("mnist1d", x[:, None, :], y, x_test[:, None, :], y_test, num_classes=10)


# ---------------------------------------------------------------------------------------------
# torchvision datasets


def _torchvision_split(name: str, factory: Callable, folder: Path, files: list[str], download: bool):
    """Call a torchvision dataset constructor; turn "not found" into an error saying how to fix it."""
    try:
        return factory()
    except (RuntimeError, OSError) as e:
        how = (
            f"the download failed ({e}); check the network connection, or place the files there by hand"
            if download
            else "set dataset.download: true once on a machine with network access "
            "(or call load_dataset(..., download=True)), or place the files there by hand"
        )
        raise FileNotFoundError(
            f"dataset {name!r} was not found (or its files failed torchvision's checksum) in {folder}; "
            f"expected files {files}. To get it: {how}."
        ) from e


def normalize_images(images: torch.Tensor, name: str) -> torch.Tensor:
    """uint8 (N, C, H, W) -> float32 normalized per channel with NORMALIZATION[name], on the
    images' device (elementwise IEEE float32 operations: the same numbers on any device)."""
    mean, std = (torch.tensor(v, dtype=torch.float32, device=images.device).view(1, -1, 1, 1) for v in NORMALIZATION[name])
    return (images.to(torch.float32) / 255.0 - mean) / std


def _image_dataset(name: str, images: list[torch.Tensor], labels: list, num_classes: int, normalize: bool) -> Dataset:
    """A dataset of uint8 (N, C, H, W) train and test ``images``: normalized, or kept as uint8
    with ``normalization`` naming what to apply (``normalize=False``)."""
    if normalize:
        return _clean_dataset(
            name, *(normalize_images(x, name) for x in images[:1]), labels[0], normalize_images(images[1], name), labels[1], num_classes
        )
    y_train = torch.as_tensor(labels[0], dtype=torch.int64)
    return Dataset(
        name=name,
        x_train=images[0],
        y_train=y_train,
        y_train_clean=y_train.clone(),
        x_test=images[1],
        y_test=torch.as_tensor(labels[1], dtype=torch.int64),
        num_classes=num_classes,
        input_shape=tuple(images[0].shape[1:]),
        normalization=name,
    )


def _load_cifar(name: str, root: str | Path, download: bool, normalize: bool = True) -> Dataset:
    from torchvision import datasets

    cls, num_classes = {"cifar10": (datasets.CIFAR10, 10), "cifar100": (datasets.CIFAR100, 100)}[name]
    folder = Path(root) / cls.base_folder
    files = [f for f, _ in cls.train_list + cls.test_list] + [cls.meta["filename"]]
    splits = [
        _torchvision_split(name, lambda train=train: cls(root=str(root), train=train, download=download), folder, files, download)
        for train in (True, False)
    ]
    # torchvision keeps CIFAR as uint8 (N, H, W, C).
    images = [torch.from_numpy(s.data).permute(0, 3, 1, 2) for s in splits]
    labels = [torch.as_tensor(s.targets, dtype=torch.int64) for s in splits]
    return _image_dataset(name, images, labels, num_classes, normalize)


def load_cifar10(root: str | Path, download: bool = False, normalize: bool = True) -> Dataset:
    """CIFAR-10 from ``<root>/cifar-10-batches-py`` (50000 train / 10000 test, 3x32x32)."""
    return _load_cifar("cifar10", root, download, normalize)


def load_cifar100(root: str | Path, download: bool = False, normalize: bool = True) -> Dataset:
    """CIFAR-100 (fine labels) from ``<root>/cifar-100-python``."""
    return _load_cifar("cifar100", root, download, normalize)


def load_svhn(root: str | Path, download: bool = False, normalize: bool = True) -> Dataset:
    """SVHN ``train`` and ``test`` splits from ``<root>/{train,test}_32x32.mat`` (label 0 = digit 0)."""
    from torchvision import datasets

    files = ["train_32x32.mat", "test_32x32.mat"]
    splits = [
        _torchvision_split(
            "svhn", lambda split=split: datasets.SVHN(root=str(root), split=split, download=download), Path(root), files, download
        )
        for split in ("train", "test")
    ]
    # torchvision keeps SVHN as uint8 (N, C, H, W).
    images = [torch.from_numpy(s.data) for s in splits]
    labels = [torch.as_tensor(s.labels, dtype=torch.int64) for s in splits]
    return _image_dataset("svhn", images, labels, 10, normalize)


def load_mnist(root: str | Path, download: bool = False, normalize: bool = True) -> Dataset:
    """MNIST from ``<root>/MNIST/raw`` (idx files), zero-padded to 1x32x32."""
    from torchvision import datasets

    folder = Path(root) / "MNIST" / "raw"
    files = [Path(f).stem for f, _ in datasets.MNIST.resources]
    splits = [
        _torchvision_split(
            "mnist", lambda train=train: datasets.MNIST(root=str(root), train=train, download=download), folder, files, download
        )
        for train in (True, False)
    ]
    # Pad the uint8 images with background (0) before normalizing, so the border is background.
    images = [F.pad(s.data[:, None], (2, 2, 2, 2)) for s in splits]
    return _image_dataset("mnist", images, [s.targets for s in splits], 10, normalize)


def load_langpair(root: str | Path, download: bool = False) -> Dataset:
    """The generated language pair (``lltax.data.languages``): translation, generated in memory."""
    from lltax.data.languages import load_language_pair

    return load_language_pair(root, download)


def load_iwslt16_de_en(root: str | Path, download: bool = False) -> Dataset:
    """IWSLT 2016 De-En from the release's files in ``<root>/de-en/`` (``lltax.data.translation``)."""
    from lltax.data.translation import load_iwslt16_de_en as load

    return load(root, download)


# The loaders that take normalize=False (uint8 images out).
IMAGE_DATASETS = ("cifar10", "cifar100", "svhn", "mnist")

DATASETS: dict[str, Callable[..., Dataset]] = {
    "mnist1d": load_mnist1d,
    "cifar10": load_cifar10,
    "cifar100": load_cifar100,
    "svhn": load_svhn,
    "mnist": load_mnist,
    "langpair": load_langpair,
    "iwslt16_de_en": load_iwslt16_de_en,
}


EXTERNAL_KEYS = ("x_train", "y_train", "x_test", "y_test", "num_classes")


def load_external(name: str, root: str | Path, download: bool = False) -> Dataset:
    """Your own dataset: ``name`` = 'package.module:function', a builder called as
    ``function(root=<data_dir>, download=<dataset.download>)`` that returns a mapping with
    ``x_train`` (N, *input_shape) float inputs, already normalized; ``y_train`` (N,) integer
    labels in [0, num_classes); ``x_test``, ``y_test`` likewise; ``num_classes`` (int).
    Tensors or numpy arrays. lltax applies the grid's train_fraction and label noise itself.
    The builder must return the same data every time (every job calls it).
    """
    builder = import_builder("dataset", name, DATASETS)
    data = builder(root=str(root), download=download)
    if not isinstance(data, Mapping) or any(key not in data for key in EXTERNAL_KEYS):
        raise ValueError(
            f"dataset builder {name!r} must return a mapping with keys {list(EXTERNAL_KEYS)}; got {type(data).__name__}"
            + (f" with keys {sorted(data)}" if isinstance(data, Mapping) else "")
        )
    num_classes = data["num_classes"]
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"dataset {name!r}: num_classes must be an integer >= 2, got {num_classes!r}")
    dataset = _clean_dataset(name, data["x_train"], data["y_train"], data["x_test"], data["y_test"], num_classes)
    for split, x, y in (("train", dataset.x_train, dataset.y_train), ("test", dataset.x_test, dataset.y_test)):
        if x.ndim < 2 or len(x) == 0:
            raise ValueError(f"dataset {name!r}: x_{split} must have shape (N, *input_shape) with N >= 1, got {tuple(x.shape)}")
        if y.shape != (len(x),):
            raise ValueError(f"dataset {name!r}: y_{split} must have shape ({len(x)},) to match x_{split}, got {tuple(y.shape)}")
        if not torch.isfinite(x).all():
            raise ValueError(f"dataset {name!r}: x_{split} has NaN or infinite values")
        if y.min() < 0 or y.max() >= num_classes:
            raise ValueError(f"dataset {name!r}: y_{split} has labels outside [0, {num_classes}): {int(y.min())}..{int(y.max())}")
    if dataset.x_test.shape[1:] != dataset.x_train.shape[1:]:
        raise ValueError(
            f"dataset {name!r}: test inputs {tuple(dataset.x_test.shape[1:])} differ from training inputs {dataset.input_shape}"
        )
    return dataset


# ---------------------------------------------------------------------------------------------
# Fixed training subsets and label noise

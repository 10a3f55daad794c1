"""Datasets as tensors on the device, with fixed training subsets, fixed label noise, and mixup.

Every dataset is small enough to live on the device as one tensor per split, so the training
loop indexes it directly (no DataLoader). ``load_dataset`` returns a cell's data: the fixed
subset of the training set (``train_fraction``) with a fixed fraction of its labels replaced by
a different class (``label_noise``); the test set is always complete and clean.

Both the subset and the noisy labels depend only on the dataset (its size and number of
classes), never on the training seed or the width, so every model of a grid cell sees the
same data. They nest: the subset at fraction 0.25 is part of the one at 0.5, and the labels
corrupted at noise 0.1 are corrupted (to the same wrong class) at noise 0.2.

Datasets (``DATASETS``):

- ``mnist1d``: generated locally by the ``mnist1d`` package (Greydanus 2020) with its default
  arguments (4000 train / 1000 test, 10 classes, inputs (1, 40)) and cached under
  ``<root>/mnist1d/``; never downloaded.
- ``cifar10``, ``cifar100``, ``svhn``, ``mnist``: torchvision's loaders on ``root``, images as
  float32 (N, C, H, W) normalized per channel. MNIST is zero-padded from 28x28 to 32x32 (as
  LeNet-5 did) so that every image model sees 32x32 inputs: ResNet18's 3x3 stem and VGG11's
  five 2x2 poolings are then identical to CIFAR's. SVHN uses its ``train`` split (not
  ``extra``).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from lltax.config import config_hash
from lltax.importing import import_builder
from lltax.io import atomic_path

logger = logging.getLogger(__name__)

# Fixed seeds of the training subset and of the label noise. They are part of the definition
# of an experiment (not of a run): changing them changes every cell's data.
SUBSET_SEED = 0
NOISE_SEED = 1

# Per-channel (mean, std) of the training images in [0, 1]. CIFAR-10's are the ones of the
# reference code of Yang et al. 2021 (nsfzyzz/loss_landscape_taxonomy, code/data.py), which
# inherited the widely copied std (0.2023, 0.1994, 0.2010) from kuangliu/pytorch-cifar.
NORMALIZATION = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "svhn": ((0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970)),
    "mnist": ((0.1307,), (0.3081,)),
}


@dataclasses.dataclass
class Dataset:
    """One cell's data, all tensors on one device.

    Attributes
    ----------
    name : str
        Key in ``DATASETS``.
    x_train, x_test : torch.Tensor
        float32 inputs, shape (N, *input_shape).
    y_train : torch.Tensor
        int64 training labels the model is trained on (noisy ones included).
    y_train_clean : torch.Tensor
        int64 true labels of the same training samples.
    y_test : torch.Tensor
        int64 test labels (never noisy).
    num_classes : int
    input_shape : tuple of int
        Per-sample shape, e.g. (3, 32, 32) or (1, 40).
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    y_train_clean: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    input_shape: tuple[int, ...]


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
# MNIST-1D: generated locally, cached


# The mnist1d package's default generator arguments (mnist1d.data.get_dataset_args, without its
# download url), pinned here: they define the data and name its cache file, and a job that
# only reads the cache need not import mnist1d (0.5-0.7 s: it pulls in matplotlib and scipy).
# tests/test_data.py checks them against the installed package.
MNIST1D_ARGS = {
    "num_samples": 5000, "train_split": 0.8, "template_len": 12, "padding": [36, 60], "scale_coeff": 0.4,
    "max_translation": 48, "corr_noise_scale": 0.25, "iid_noise_scale": 0.02, "shear_scale": 0.75,
    "shuffle_seq": False, "final_seq_length": 40, "seed": 42,
}


def mnist1d_generator_args() -> dict:
    """The arguments MNIST-1D is generated with (a copy of ``MNIST1D_ARGS``)."""
    return {key: list(value) if isinstance(value, list) else value for key, value in MNIST1D_ARGS.items()}


def mnist1d_cache_path(root: str | Path) -> Path:
    """``<root>/mnist1d/mnist1d-<hash of the generator arguments>.npz``."""
    return Path(root) / "mnist1d" / f"mnist1d-{config_hash(mnist1d_generator_args())}.npz"


def _generate_mnist1d(args: dict) -> dict:
    from mnist1d.data import make_dataset
    from mnist1d.utils import ObjectView

    # make_dataset seeds Python's and NumPy's global RNGs; put them back so that generating
    # (or not, when cached) cannot change anything else a process draws.
    python_state, numpy_state = random.getstate(), np.random.get_state()
    try:
        return make_dataset(ObjectView(dict(args)))
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)


def load_mnist1d(root: str | Path, download: bool = False) -> Dataset:
    """MNIST-1D with the package's default arguments; generated once, then read from the cache.

    ``download`` is ignored: the data is always generated locally, never downloaded.
    """
    path = mnist1d_cache_path(root)
    if not path.exists():
        args = mnist1d_generator_args()
        logger.info("generating MNIST-1D (%s) into %s", args, path)
        data = _generate_mnist1d(args)
        # Written atomically: concurrent jobs may generate the same (identical) file at once, so
        # none may remove another's temporary file (a race seen with 2 jobs starting together).
        with atomic_path(path, clean_stale=False) as tmp:
            with open(tmp, "wb") as handle:
                np.savez(handle, x=data["x"], y=data["y"], x_test=data["x_test"], y_test=data["y_test"])
            tmp.chmod(0o644)  # a shared data cache: readable by others (mkstemp makes it 0600)
    with np.load(path, allow_pickle=False) as arrays:
        x, y, x_test, y_test = (arrays[key] for key in ("x", "y", "x_test", "y_test"))
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


def _normalize_images(images: torch.Tensor, name: str) -> torch.Tensor:
    """uint8 (N, C, H, W) -> float32 normalized per channel with NORMALIZATION[name]."""
    mean, std = (torch.tensor(v, dtype=torch.float32).view(1, -1, 1, 1) for v in NORMALIZATION[name])
    return (images.to(torch.float32) / 255.0 - mean) / std


def _load_cifar(name: str, root: str | Path, download: bool) -> Dataset:
    from torchvision import datasets

    cls, num_classes = {"cifar10": (datasets.CIFAR10, 10), "cifar100": (datasets.CIFAR100, 100)}[name]
    folder = Path(root) / cls.base_folder
    files = [f for f, _ in cls.train_list + cls.test_list] + [cls.meta["filename"]]
    splits = [
        _torchvision_split(name, lambda train=train: cls(root=str(root), train=train, download=download), folder, files, download)
        for train in (True, False)
    ]
    # torchvision keeps CIFAR as uint8 (N, H, W, C).
    images = [_normalize_images(torch.from_numpy(s.data).permute(0, 3, 1, 2), name) for s in splits]
    labels = [torch.as_tensor(s.targets, dtype=torch.int64) for s in splits]
    return _clean_dataset(name, images[0], labels[0], images[1], labels[1], num_classes)


def load_cifar10(root: str | Path, download: bool = False) -> Dataset:
    """CIFAR-10 from ``<root>/cifar-10-batches-py`` (50000 train / 10000 test, 3x32x32)."""
    return _load_cifar("cifar10", root, download)


def load_cifar100(root: str | Path, download: bool = False) -> Dataset:
    """CIFAR-100 (fine labels) from ``<root>/cifar-100-python``."""
    return _load_cifar("cifar100", root, download)


def load_svhn(root: str | Path, download: bool = False) -> Dataset:
    """SVHN ``train`` and ``test`` splits from ``<root>/{train,test}_32x32.mat`` (label 0 = digit 0)."""
    from torchvision import datasets

    files = ["train_32x32.mat", "test_32x32.mat"]
    splits = [
        _torchvision_split("svhn", lambda split=split: datasets.SVHN(root=str(root), split=split, download=download), Path(root), files, download)
        for split in ("train", "test")
    ]
    # torchvision keeps SVHN as uint8 (N, C, H, W).
    images = [_normalize_images(torch.from_numpy(s.data), "svhn") for s in splits]
    labels = [torch.as_tensor(s.labels, dtype=torch.int64) for s in splits]
    return _clean_dataset("svhn", images[0], labels[0], images[1], labels[1], num_classes=10)


def load_mnist(root: str | Path, download: bool = False) -> Dataset:
    """MNIST from ``<root>/MNIST/raw`` (idx files), zero-padded to 1x32x32."""
    from torchvision import datasets

    folder = Path(root) / "MNIST" / "raw"
    files = [Path(f).stem for f, _ in datasets.MNIST.resources]
    splits = [
        _torchvision_split("mnist", lambda train=train: datasets.MNIST(root=str(root), train=train, download=download), folder, files, download)
        for train in (True, False)
    ]
    # Pad the uint8 images with background (0) before normalizing, so the border is background.
    images = [_normalize_images(F.pad(s.data[:, None], (2, 2, 2, 2)), "mnist") for s in splits]
    return _clean_dataset("mnist", images[0], splits[0].targets, images[1], splits[1].targets, num_classes=10)


DATASETS: dict[str, Callable[..., Dataset]] = {
    "mnist1d": load_mnist1d,
    "cifar10": load_cifar10,
    "cifar100": load_cifar100,
    "svhn": load_svhn,
    "mnist": load_mnist,
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
        raise ValueError(f"dataset builder {name!r} must return a mapping with keys {list(EXTERNAL_KEYS)}; got {type(data).__name__}"
                         + (f" with keys {sorted(data)}" if isinstance(data, Mapping) else ""))
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
        raise ValueError(f"dataset {name!r}: test inputs {tuple(dataset.x_test.shape[1:])} differ from training inputs {dataset.input_shape}")
    return dataset


# ---------------------------------------------------------------------------------------------
# Fixed training subsets and label noise


def rounded_count(fraction: float, total: int) -> int:
    """round(fraction * total), halves rounded up (Python's round() would round them to even)."""
    return int(math.floor(fraction * total + 0.5))


def subset_indices(num_total: int, fraction: float) -> torch.Tensor:
    """Sorted indices of the fixed training subset: the first round(fraction * N) of a fixed permutation.

    The permutation depends only on ``num_total`` (seed ``SUBSET_SEED``), so subsets are the
    same for every training seed and nested across fractions.
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"train_fraction must be in (0, 1], got {fraction!r}")
    count = rounded_count(fraction, num_total)
    if count < 1:
        raise ValueError(f"train_fraction {fraction!r} of {num_total} training samples leaves none; use a larger train_fraction")
    # RandomState, not default_rng: NumPy guarantees its stream will never change (NEP 19), and
    # this permutation defines the experiment's data.
    permutation = np.random.RandomState(SUBSET_SEED).permutation(num_total)
    return torch.from_numpy(np.sort(permutation[:count]))


def corrupt_labels(labels: torch.Tensor, noise: float, num_classes: int, indices: torch.Tensor | None = None) -> torch.Tensor:
    """Labels of ``labels[indices]`` with exactly round(noise * len(indices)) replaced by a different class.

    Parameters
    ----------
    labels : torch.Tensor
        int64 clean labels of the FULL training set (length N).
    noise : float
        Fraction of the selected samples whose label is replaced, in [0, 1).
    num_classes : int
    indices : torch.Tensor, optional
        Indices of the samples in use (e.g. ``subset_indices``); default all N.

    Returns
    -------
    torch.Tensor
        int64 labels of the selected samples, on CPU.

    Notes
    -----
    Every sample of the full training set gets a fixed random priority and a fixed wrong
    class (seed ``NOISE_SEED``, depending only on N and ``num_classes``); the selected
    samples with the lowest priorities are corrupted. Hence the noisy labels are the same
    for every training seed and width, nested across noise levels, and a sample corrupted in
    one cell carries the same wrong label in every cell. Unlike the reference code (which
    redraws a uniform label with probability p, keeping the true one 1/C of the time), the
    noise level here is exactly the fraction of wrong labels.
    """
    if not 0.0 <= noise < 1.0:
        raise ValueError(f"label_noise must be in [0, 1), got {noise!r}")
    labels = labels.detach().cpu().to(torch.int64)
    indices = torch.arange(len(labels)) if indices is None else indices.detach().cpu().to(torch.int64)
    selected = labels[indices].clone()
    count = rounded_count(noise, len(indices))
    if count == 0:
        return selected
    if num_classes < 2:
        raise ValueError(f"label noise needs at least 2 classes, got num_classes={num_classes}")
    state = np.random.RandomState(NOISE_SEED)  # fixed stream (NEP 19), as in subset_indices
    priority = np.empty(len(labels), dtype=np.int64)
    priority[state.permutation(len(labels))] = np.arange(len(labels))
    # An offset in 1..C-1 modulo C is a uniformly drawn class different from the true one.
    offsets = torch.from_numpy(state.randint(1, num_classes, size=len(labels)))
    corrupted = torch.from_numpy(np.argsort(priority[indices.numpy()], kind="stable")[:count])
    selected[corrupted] = (selected[corrupted] + offsets[indices[corrupted]]) % num_classes
    return selected


def redraw_labels(labels: torch.Tensor, probability: float, num_classes: int, indices: torch.Tensor | None = None) -> torch.Tensor:
    """Labels of ``labels[indices]``, each redrawn uniformly over ALL classes with ``probability``.

    The reference code's label noise (``label_noise_mode: paper``): a redrawn label keeps its
    true class 1/C of the time, so the expected fraction of wrong labels is p(1 - 1/C)
    (0.2 -> 18 % on 10 classes), and p = 1 is allowed (labels independent of the inputs).
    As in ``corrupt_labels`` the draws are fixed per sample of the full training set (seed
    ``NOISE_SEED``): the same noisy labels for every training seed and width, and nested
    across levels (a sample redrawn at p is redrawn, to the same class, at every p' > p).
    """
    if not 0.0 <= probability <= 1.0:
        raise ValueError(f"label_noise must be in [0, 1] for label_noise_mode 'paper', got {probability!r}")
    labels = labels.detach().cpu().to(torch.int64)
    indices = torch.arange(len(labels)) if indices is None else indices.detach().cpu().to(torch.int64)
    selected = labels[indices].clone()
    state = np.random.RandomState(NOISE_SEED + 1)  # a stream of its own, fixed (NEP 19)
    uniform = torch.from_numpy(state.random_sample(len(labels)))
    classes = torch.from_numpy(state.randint(0, num_classes, size=len(labels)))
    redrawn = uniform[indices] < probability
    selected[redrawn] = classes[indices][redrawn]
    return selected


LABEL_NOISE_MODES = ("exact", "paper")


def load_dataset(
    name: str,
    root: str | Path,
    label_noise: float = 0.0,
    train_fraction: float = 1.0,
    download: bool = False,
    device: torch.device | str = "cpu",
    label_noise_mode: str = "exact",
) -> Dataset:
    """A cell's data: the fixed training subset with fixed noisy labels, and the clean test set.

    Parameters
    ----------
    name : str
        Key in ``DATASETS``.
    root : str or Path
        Data folder (config key ``data_dir``): where torchvision datasets are looked for and
        MNIST-1D is cached.
    label_noise : float
        ``exact`` mode: fraction of the subset's training labels replaced by a different class,
        in [0, 1). ``paper`` mode: probability that a label is redrawn over all classes, in [0, 1].
    train_fraction : float
        Fraction of the training set used, in (0, 1].
    download : bool
        Let torchvision download a missing dataset (needs network).
    device : torch.device or str
        Where the tensors are put.
    label_noise_mode : str
        ``exact`` (``corrupt_labels``) or ``paper`` (``redraw_labels``, the reference code's).

    Raises
    ------
    ValueError
        Unknown ``name`` or out-of-range ``label_noise`` / ``train_fraction``.
    FileNotFoundError
        A torchvision dataset is missing; the message names the folder and how to get it.
    """
    full = DATASETS[name](root, download=download) if name in DATASETS else load_external(name, root, download)
    indices = subset_indices(len(full.y_train), train_fraction)
    if label_noise_mode == "exact":
        noisy = corrupt_labels(full.y_train, label_noise, full.num_classes, indices)
    elif label_noise_mode == "paper":
        noisy = redraw_labels(full.y_train, label_noise, full.num_classes, indices)
    else:
        raise ValueError(f"label_noise_mode must be one of {LABEL_NOISE_MODES}, got {label_noise_mode!r}")
    logger.info(
        "dataset %s: %d of %d training samples (fraction %s), %d labels noisy (noise %s), %d test samples",
        name, len(indices), len(full.y_train), train_fraction, int((noisy != full.y_train[indices]).sum()), label_noise, len(full.y_test),
    )
    return dataclasses.replace(
        full,
        x_train=full.x_train[indices].to(device),
        y_train=noisy.to(device),
        y_train_clean=full.y_train[indices].to(device),
        x_test=full.x_test.to(device),
        y_test=full.y_test.to(device),
    )


# ---------------------------------------------------------------------------------------------
# Batch transforms on tensors


def augment_batch(x: torch.Tensor, generator: torch.Generator, padding: int = 4) -> torch.Tensor:
    """Random crop with zero padding plus random horizontal flip, per sample, for image batches.

    The standard CIFAR augmentation (``RandomCrop(32, padding=4)`` then
    ``RandomHorizontalFlip()``), vectorized on the batch's device. The padding is zero in
    normalized units (the mean colour), not black as when torchvision pads before normalizing.
    Batches of 1D data (3D tensors, (N, C, L)) are returned unchanged.

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
    if x.dim() != 4:
        raise ValueError(f"augment_batch expects (N, C, H, W) images or (N, C, L) sequences, got shape {tuple(x.shape)}")
    num, _, height, width = x.shape
    shifts = torch.randint(0, 2 * padding + 1, (2, num), generator=generator, device=generator.device).to(x.device)
    flips = torch.randint(0, 2, (num,), generator=generator, device=generator.device).to(x.device, torch.bool)
    padded = F.pad(x, (padding, padding, padding, padding))
    rows = shifts[0, :, None] + torch.arange(height, device=x.device)
    columns = torch.arange(width, device=x.device).expand(num, width)
    columns = torch.where(flips[:, None], width - 1 - columns, columns) + shifts[1, :, None]
    # Advanced indices separated by a slice come first: the result is (N, H, W, C).
    samples = torch.arange(num, device=x.device)[:, None, None]
    return padded[samples, :, rows[:, :, None], columns[:, None, :]].permute(0, 3, 1, 2).contiguous()

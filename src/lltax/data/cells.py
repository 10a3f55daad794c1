"""A grid cell's data as tensors on the device: fixed training subsets, fixed label noise, augmentation.

Every dataset is small enough to live on the device as one tensor per split, so the training
loop indexes it directly (no DataLoader). ``load_dataset`` returns a cell's data: the fixed
subset of the training set (``train_fraction``) with a fixed fraction of its labels replaced by
a different class (``label_noise``); the test set is always complete and clean.

Both the subset and the noisy labels depend only on the dataset (its size and number of
classes), never on the training seed or the width, so every model of a grid cell sees the
same data. They nest: the subset at fraction 0.25 is part of the one at 0.5, and the labels
corrupted at noise 0.1 are corrupted (to the same wrong class) at noise 0.2.

The datasets themselves come from ``lltax.data.loaders`` (``DATASETS``).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
from pathlib import Path

import numpy as np
import torch

from lltax.data.loaders import DATASETS, IMAGE_DATASETS, Dataset, load_external, normalize_images
from lltax.data.sequences import swap_targets

logger = logging.getLogger(__name__)

# Fixed seeds of the training subset and of the label noise. They are part of the definition
# of an experiment (not of a run): changing them changes every cell's data.
SUBSET_SEED = 0
NOISE_SEED = 1
POISON_SEED = 2


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
    full = full_dataset(name, str(root), download)
    indices = subset_indices(len(full.y_train), train_fraction)
    if full.task == "seq2seq":
        return _translation_cell(full, indices, label_noise, label_noise_mode, device)
    if label_noise_mode == "exact":
        noisy = corrupt_labels(full.y_train, label_noise, full.num_classes, indices)
    elif label_noise_mode == "paper":
        noisy = redraw_labels(full.y_train, label_noise, full.num_classes, indices)
    else:
        raise ValueError(f"label_noise_mode must be one of {LABEL_NOISE_MODES}, got {label_noise_mode!r}")
    logger.info(
        "dataset %s: %d of %d training samples (fraction %s), %d labels noisy (noise %s), %d test samples",
        name,
        len(indices),
        len(full.y_train),
        train_fraction,
        int((noisy != full.y_train[indices]).sum()),
        label_noise,
        len(full.y_test),
    )
    return dataclasses.replace(
        full,
        x_train=on_device(full.x_train[indices], full.normalization, device),
        y_train=noisy.to(device),
        y_train_clean=full.y_train[indices].to(device),
        x_test=on_device(full.x_test, full.normalization, device),
        y_test=full.y_test.to(device, copy=True),
        normalization=None,
    )


def _translation_cell(full: Dataset, indices: torch.Tensor, label_noise: float, label_noise_mode: str, device) -> Dataset:
    """A translation cell: the subset's pairs, a fixed fraction given another pair's target."""
    if label_noise_mode != "exact":
        raise ValueError(
            f"dataset {full.name!r} is a translation task: label noise swaps targets between pairs (label_noise_mode 'exact'), not 'paper'"
        )
    x_train, y_train = swap_targets(full.x_train, label_noise, indices)
    logger.info(
        "dataset %s: %d of %d training pairs (fraction %s), %d given another pair's target (noise %s), %d test pairs",
        full.name,
        len(indices),
        len(full.x_train),
        len(indices) / len(full.x_train),
        int((x_train[:, 1] != full.x_train[indices, 1]).any(dim=1).sum()),
        label_noise,
        len(full.x_test),
    )
    return dataclasses.replace(
        full,
        x_train=x_train.to(device),
        y_train=y_train.to(device),
        y_train_clean=full.y_train[indices].to(device),
        x_test=full.x_test.to(device, copy=True),
        y_test=full.y_test.to(device, copy=True),
    )


def full_dataset(name: str, root: str, download: bool) -> Dataset:
    """A whole dataset as its loader returns it, images as uint8 (``normalization`` set).

    Image datasets are read once per process (while their files are unchanged): a job that
    measures several seeds or pairs of a cell decodes them once. Never modified: ``load_dataset``
    copies what it hands out."""
    if name in IMAGE_DATASETS:
        return _image_dataset(name, root, download, _files_stamp(Path(root) / IMAGE_FOLDERS[name]))
    return DATASETS[name](root, download=download) if name in DATASETS else load_external(name, root, download)


# Where each image dataset's files lie under data_dir (torchvision's layout).
IMAGE_FOLDERS = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python", "svhn": ".", "mnist": "MNIST/raw"}


def _files_stamp(folder: Path) -> tuple:
    """(name, size, mtime) of the files directly in ``folder``: a changed file is another key."""
    if not folder.is_dir():
        return ()
    return tuple(sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in folder.iterdir() if p.is_file()))


@functools.lru_cache(maxsize=2)
def _image_dataset(name: str, root: str, download: bool, stamp: tuple) -> Dataset:
    return DATASETS[name](root, download=download, normalize=False)


def on_device(inputs: torch.Tensor, normalization: str | None, device: torch.device | str) -> torch.Tensor:
    """``inputs`` on ``device`` as float32 model inputs: uint8 images are moved as they are and
    normalized there (``normalize_images``: the same numbers as normalizing first), others copied."""
    if normalization is None:
        return inputs.to(device, copy=True)
    return normalize_images(inputs.to(device), normalization)


def poison_set(
    name: str,
    root: str | Path,
    count: int,
    train_fraction: float,
    download: bool = False,
    device: torch.device | str = "cpu",
) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` training inputs the cell's subset leaves out, each with a wrong label: the
    poisoned set of Huang et al. 2019, whose fitting (with the clean data) leads training to a
    bad minimum: perfect training accuracy, poor test accuracy.

    The inputs are the last ``count`` of the fixed permutation whose first entries are the
    subsets (``subset_indices``), so they never overlap the cell's data and are the same for
    every cell and seed; each label is drawn uniformly over the other classes from a fixed
    stream (``POISON_SEED``).
    """
    full = full_dataset(name, str(root), download)
    total = len(full.y_train)
    used = len(subset_indices(total, train_fraction))
    if count > total - used:
        raise ValueError(
            f"train.poison = {count} needs that many training samples outside the cell's subset, but train_fraction "
            f"{train_fraction} of {total} leaves {total - used}; lower train.poison or train_fraction"
        )
    permutation = np.random.RandomState(SUBSET_SEED).permutation(total)
    indices = torch.from_numpy(np.sort(permutation[total - count :]))
    true = full.y_train[indices]
    shift = torch.from_numpy(np.random.RandomState(POISON_SEED).randint(1, full.num_classes, size=count))
    wrong = (true + shift) % full.num_classes  # never the true class
    logger.info("poisoned set: %d samples outside the subset, every label wrong", count)
    return on_device(full.x_train[indices], full.normalization, device), wrong.to(device)

"""``Dataset``: a whole dataset, or one grid cell's, as tensors (what every loader returns)."""

from __future__ import annotations

import dataclasses

import torch


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
    normalization : str or None
        None: the inputs are float32 and ready. A key of ``NORMALIZATION``: the inputs are still
        the uint8 images (a loader called with ``normalize=False``), to be normalized with
        ``normalize_images`` once they are where they will be used (4x less to copy to a GPU).
    task : str
        "classification" (labels (N,)), or "seq2seq": translation pairs in the layout of
        ``lltax.data.sequences`` (inputs (N, 2, L) int64 token ids, targets (N, L) with padding as
        ``IGNORE_INDEX``; ``num_classes`` is the vocabulary size).
    vocabulary : tuple of str or None
        seq2seq: the piece of each token id (sentencepiece's convention), for detokenizing.
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    y_train_clean: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    input_shape: tuple[int, ...]
    normalization: str | None = None
    task: str = "classification"
    vocabulary: tuple[str, ...] | None = None


def seq2seq_dataset(name: str, train: tuple, test: tuple, vocabulary: tuple[str, ...]) -> Dataset:
    """A seq2seq ``Dataset`` of packed (pairs, targets) ``train`` and ``test`` splits over ``vocabulary``."""
    (x_train, y_train), (x_test, y_test) = train, test
    return Dataset(
        name=name,
        x_train=x_train,
        y_train=y_train,
        y_train_clean=y_train.clone(),
        x_test=x_test,
        y_test=y_test,
        num_classes=len(vocabulary),
        input_shape=tuple(x_train.shape[1:]),
        task="seq2seq",
        vocabulary=tuple(vocabulary),
    )

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
        ``lltax.sequences`` (inputs (N, 2, L) int64 token ids, targets (N, L) with padding as
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

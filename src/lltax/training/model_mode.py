"""A model's train/eval mode for one block of code, restored afterwards (also on an error)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from torch import nn


@contextlib.contextmanager
def mode(model: nn.Module, training: bool) -> Iterator[nn.Module]:
    """``with mode(model, training=False):`` evaluates in eval mode (BatchNorm's running
    statistics, no dropout) and leaves the model in the mode it had before."""
    was_training = model.training
    model.train(training)
    try:
        yield model
    finally:
        model.train(was_training)

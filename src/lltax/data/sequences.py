"""Sequence-to-sequence data as tensors: token conventions, packing, label noise, detokenizing.

A translation dataset (``Dataset.task == "seq2seq"``) holds its pairs in the classification
layout the rest of lltax already handles (issue 28):

- inputs ``x`` of shape (N, 2, L), int64: row 0 the source tokens, row 1 the target tokens,
  each ending with ``EOS`` and padded with ``PAD`` to the common length L. The model shifts the
  target right itself (``BOS`` first: teacher forcing), so a pair is one input;
- targets ``y`` of shape (N, L), int64: the target tokens, padding as ``IGNORE_INDEX``;
- a model maps (N, 2, L) to logits of shape (N, vocabulary, L): the class dimension second,
  as ``torch.nn.functional.cross_entropy`` takes K-dimensional targets.

So ``F.cross_entropy(logits, y)`` is the mean cross-entropy over the non-padding target tokens
(its default ``ignore_index`` is ``IGNORE_INDEX``), ``(logits.argmax(1) == y).sum()`` counts
correct tokens, and ``target_count(y)`` is what a sum is divided by: the number of samples
for class labels (none is ``IGNORE_INDEX``), the number of real tokens for sequences. Every
metric measures this plain loss; label smoothing is a training option only.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

PAD, BOS, EOS, UNK = 0, 1, 2, 3
SPECIAL_TOKENS = ("<pad>", "<s>", "</s>", "<unk>")
IGNORE_INDEX = -100  # torch's cross_entropy default: padded target positions count nowhere
WORD_START = "\u2581"  # sentencepiece's word-start mark: a piece starting with it starts a word

# Fixed seed of which training pairs get another pair's target (as lltax.data.cells.NOISE_SEED for labels).
NOISE_SEED = 1


def target_count(targets: torch.Tensor) -> int:
    """Targets a loss is averaged over: samples (class labels) or non-padding tokens (sequences)."""
    return int((targets != IGNORE_INDEX).sum())


def pack_pairs(sources: Sequence[Sequence[int]], targets: Sequence[Sequence[int]], length: int | None = None):
    """Token-id lists -> (x (N, 2, L), y (N, L)) int64 tensors: ``EOS`` appended, ``PAD`` after it.

    ``length`` (L) defaults to the longest sequence plus its ``EOS``; a longer one is an error.
    """
    if len(sources) != len(targets) or not sources:
        raise ValueError(f"need as many source as target sentences, at least one; got {len(sources)} and {len(targets)}")
    longest = max(len(s) for s in (*sources, *targets)) + 1
    length = longest if length is None else length
    if longest > length:
        raise ValueError(f"a sentence has {longest - 1} tokens, more than length {length} - 1 (one is EOS)")
    x = np.full((len(sources), 2, length), PAD, dtype=np.int64)
    for row, pair in enumerate(zip(sources, targets)):
        for side, tokens in enumerate(pair):
            x[row, side, : len(tokens) + 1] = [*tokens, EOS]
    x = torch.from_numpy(x)
    return x, targets_of(x)


def targets_of(x: torch.Tensor) -> torch.Tensor:
    """The loss targets of packed pairs: the target row with ``PAD`` as ``IGNORE_INDEX``."""
    target = x[:, 1]
    return torch.where(target == PAD, torch.full_like(target, IGNORE_INDEX), target)


def swap_targets(x: torch.Tensor, noise: float, indices: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Pairs ``x[indices]`` with exactly round(noise * len(indices)) of them given another pair's target.

    The translation analogue of ``lltax.data.cells.corrupt_labels``: every pair of the full training
    set gets a fixed random priority and a fixed other pair (its donor), from seed
    ``NOISE_SEED`` and the set's size only; the selected pairs of lowest priority take their
    donor's target. So the noisy pairs are the same for every training seed and width, and
    nested across noise levels. A donor is another pair, not necessarily another sentence (a
    corpus with repeated sentences may hand a pair its own words).

    Returns
    -------
    (x, y) of the selected pairs, on CPU: inputs with the swapped target rows, and their targets.
    """
    if not 0.0 <= noise < 1.0:
        raise ValueError(f"label_noise must be in [0, 1), got {noise!r}")
    x = x.detach().cpu()
    total = len(x)
    indices = torch.arange(total) if indices is None else indices.detach().cpu().to(torch.int64)
    selected = x[indices].clone()
    count = int(np.floor(noise * len(indices) + 0.5))
    if count:
        if total < 2:
            raise ValueError("label noise on translation pairs needs at least 2 training pairs")
        state = np.random.RandomState(NOISE_SEED)  # a fixed stream (NEP 19), as lltax.data.cells's noise
        priority = np.empty(total, dtype=np.int64)
        priority[state.permutation(total)] = np.arange(total)
        donors = (np.arange(total) + state.randint(1, total, size=total)) % total  # never the pair itself
        chosen = torch.from_numpy(np.argsort(priority[indices.numpy()], kind="stable")[:count])
        selected[chosen, 1] = x[torch.from_numpy(donors)[indices[chosen]], 1]
    return selected, targets_of(selected)


def strip_tokens(ids: Sequence[int]) -> list[int]:
    """Token ids up to the first ``EOS`` (exclusive), specials other than ``UNK`` dropped."""
    kept = []
    for token in ids:
        if token == EOS:
            break
        if token not in (PAD, BOS):
            kept.append(int(token))
    return kept


def detokenize(ids: Sequence[int], vocabulary: Sequence[str]) -> str:
    """Text of token ids: pieces joined, sentencepiece's word-start mark as a space."""
    pieces = [vocabulary[token] for token in strip_tokens(ids)]
    return "".join(pieces).replace(WORD_START, " ").strip()

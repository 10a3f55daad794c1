"""BLEU of greedy decoding: the quality figure of a translation model (issue 28).

A seq2seq model (``lltax.data.sequences``'s layout) translates each test source greedily: starting
from ``BOS``, the most likely next token, until ``EOS`` or the dataset's length L. Hypotheses
and references are detokenized with the dataset's vocabulary (sentencepiece pieces, the word
start mark as a space; token ids as words when a dataset has none) and scored with
``sacrebleu.corpus_bleu``, the standard scorer (Post 2018), with its defaults: the 13a
tokenizer, exponential smoothing off, case-sensitive, one reference. BLEU is on sacrebleu's
0-100 scale. The references are the detokenized test targets: for a sentencepiece vocabulary
that is the reference text up to sentencepiece's own normalization (NFKC, whitespace).

A model with ``encode`` and ``decode`` methods (``lltax.models.transformer``) encodes each
source once; any other model of the layout is decoded through its forward pass alone (teacher
forcing on its own prefix: position t of its logits sees target tokens before t only), which
gives the same tokens at L forward passes' cost.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from lltax.data.sequences import BOS, EOS, PAD, detokenize, strip_tokens
from lltax.training.model_mode import mode


def _greedy_batch(model: nn.Module, sources: torch.Tensor, length: int) -> torch.Tensor:
    count = len(sources)
    hypotheses = torch.full((count, length), PAD, dtype=torch.long, device=sources.device)
    finished = torch.zeros(count, dtype=torch.bool, device=sources.device)
    fast = callable(getattr(model, "encode", None)) and callable(getattr(model, "decode", None))
    memory = model.encode(sources) if fast else None
    for position in range(length):
        if fast:
            prefix = torch.cat([torch.full_like(sources[:, :1], BOS), hypotheses[:, :position]], dim=1)
            logits = model.decode(memory, sources, prefix)[:, :, -1]
        else:
            logits = model(torch.stack([sources, hypotheses], dim=1))[:, :, position]
        token = torch.where(finished, torch.full_like(finished, PAD, dtype=torch.long), logits.argmax(dim=1))
        hypotheses[:, position] = token
        finished |= token == EOS
        if bool(finished.all()):
            break
    return hypotheses


@torch.no_grad()
def greedy_decode(model: nn.Module, sources: torch.Tensor, length: int | None = None, batch_size: int = 1000) -> torch.Tensor:
    """Greedy translations (N, L) of source rows (N, L): tokens, ``EOS`` after the last, then ``PAD``.

    ``length`` (L) defaults to the sources' length, the dataset's; a translation that reaches it
    without ``EOS`` is cut there. The model's train/eval mode is restored afterwards.
    """
    length = sources.shape[1] if length is None else length
    sources = sources.long()
    with mode(model, training=False):
        parts = [_greedy_batch(model, sources[start : start + batch_size], length) for start in range(0, len(sources), batch_size)]
    return torch.cat(parts) if parts else torch.zeros((0, length), dtype=torch.long)


def sentences(rows: torch.Tensor | Sequence[Sequence[int]], vocabulary: Sequence[str] | None) -> list[str]:
    """Text of token-id rows: detokenized with ``vocabulary``, or the ids as words without one."""
    rows = rows.tolist() if isinstance(rows, torch.Tensor) else rows
    if vocabulary is None:
        return [" ".join(str(token) for token in strip_tokens(row)) for row in rows]
    return [detokenize(row, vocabulary) for row in rows]


def corpus_bleu(hypotheses: Sequence[str], references: Sequence[str]) -> tuple[float, str | None]:
    """(BLEU on 0-100, sacrebleu's signature) of hypotheses against one reference each; (NaN, None) of none."""
    from sacrebleu.metrics import BLEU  # imported here: only translation tasks need it

    if len(hypotheses) != len(references):
        raise ValueError(f"need one reference per hypothesis, got {len(hypotheses)} hypotheses and {len(references)} references")
    if not hypotheses:
        return math.nan, None
    scorer = BLEU()
    score = scorer.corpus_score(list(hypotheses), [list(references)]).score
    # sacrebleu takes exp of the mean log of 100 x each precision: a perfect corpus scores
    # exp(log(100)) = 100.00000000000004 in floating point, outside BLEU's range; 100 is meant.
    return min(float(score), 100.0), str(scorer.get_signature())


def greedy_bleu(model: nn.Module, dataset: Any, batch_size: int = 1000) -> tuple[float, str | None]:
    """(BLEU, signature) of ``model``'s greedy translations of ``dataset``'s test sources."""
    hypotheses = greedy_decode(model, dataset.x_test[:, 0], batch_size=batch_size)
    return corpus_bleu(sentences(hypotheses, dataset.vocabulary), sentences(dataset.x_test[:, 1], dataset.vocabulary))


def translation_scores(model: nn.Module, dataset: Any, batch_size: int = 1000, finite: bool = True) -> tuple[dict[str, float], str | None]:
    """What a translation model's training record adds to ``final`` (``{"test_bleu": ...}``,
    NaN when ``finite`` is False: a diverged model) and the scorer's signature. Nothing for a
    classification dataset: its records keep their four numbers, and the dataset's
    ``test_bleu`` is NaN there, as every variable a cell did not compute."""
    if getattr(dataset, "task", "classification") != "seq2seq":
        return {}, None
    if not finite:
        return {"test_bleu": math.nan}, None
    bleu, signature = greedy_bleu(model, dataset, batch_size)
    return {"test_bleu": bleu}, signature

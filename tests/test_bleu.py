"""BLEU of greedy decoding (issue 28): sacrebleu's score of perfect and empty hypotheses, greedy
decoding of hand-built and trained tiny models, and the train job's record feeding dataset.nc."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

from lltax.data.sequences import EOS, PAD, SPECIAL_TOKENS, WORD_START, pack_pairs
from lltax.metrics.bleu import corpus_bleu, greedy_bleu, greedy_decode, sentences, translation_scores
from lltax.models import build_model
from lltax.training.loop import train_model

VOCABULARY = (*SPECIAL_TOKENS, *(WORD_START + w for w in ("the", "cat", "sat", "on", "mat", "der", "hund")))


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_bleu_of_perfect_hypothesis_is_100_and_of_empty_is_0():
    references = ["the cat sat on the mat", "a dog ran in the park today"]
    assert corpus_bleu(references, references)[0] == 100.0  # not sacrebleu's 100.00000000000004: BLEU's range ends at 100
    assert corpus_bleu(["", ""], references)[0] == 0.0
    bleu, signature = corpus_bleu(["the cat sat on a mat", "a dog ran in the park"], references)
    assert 0.0 < bleu < 100.0 and "tok:13a" in signature
    assert math.isnan(corpus_bleu([], [])[0]) and corpus_bleu([], [])[1] is None
    with pytest.raises(ValueError, match="one reference per hypothesis"):
        corpus_bleu(["a"], [])


def test_sentences_detokenize_pieces_or_name_ids():
    rows = torch.tensor([[4, 5, 6, EOS, PAD], [1, 7, EOS, 8, 9]])
    assert sentences(rows, VOCABULARY) == ["the cat sat", "on"]
    assert sentences(rows, None) == ["4 5 6", "7"]


class Copier(nn.Module):
    """By hand: predicts, at target position t, the source token at t (EOS after it): a
    translator whose greedy output is its source, through the forward pass alone."""

    def forward(self, pairs):
        source = pairs[:, 0]
        return nn.functional.one_hot(source, len(VOCABULARY)).float().transpose(1, 2) * 5.0


def test_greedy_decoding_of_a_hand_built_copier_is_its_source():
    x, _ = pack_pairs([[4, 5, 6], [7], [8, 9, 10, 4]], [[5], [5], [5]], 6)
    decoded = greedy_decode(Copier(), x[:, 0], batch_size=2)
    assert torch.equal(decoded, x[:, 0])  # tokens, EOS, then PAD: the source rows as packed
    dataset = type("D", (), {"x_test": torch.stack([x[:, 0], x[:, 0]], dim=1), "vocabulary": VOCABULARY, "task": "seq2seq"})
    assert greedy_bleu(Copier(), dataset)[0] == 100.0
    assert translation_scores(Copier(), dataset, finite=False)[0]["test_bleu"] != translation_scores(Copier(), dataset)[0]["test_bleu"]
    assert translation_scores(Copier(), type("I", (), {"task": "classification"})) == ({}, None)


def test_greedy_decoding_of_a_trained_tiny_transformer_translates_its_pairs():
    # Four pairs of a fixed word mapping (the -> der, cat -> hund, ...), learned to zero error.
    sources = [[4, 5], [5, 6], [6, 4, 5], [7]]
    mapping = {4: 9, 5: 10, 6: 8, 7: 7}
    x, y = pack_pairs(sources, [[mapping[t] for t in s] for s in sources], 5)
    torch.manual_seed(0)
    model = build_model("transformer", 16, len(VOCABULARY), (2, 5), {"layers": 1, "heads": 2, "feedforward": 32})
    result = train_model(model, x, y, batch_size=4, learning_rate=0.1, weight_decay=0.0, epochs=150)
    assert result.history[-1]["train_acc"] == 100.0
    decoded = greedy_decode(model, x[:, 0])
    assert torch.equal(decoded, x[:, 1])  # every translation, EOS and padding included
    # the encoder-decoder fast path and decoding through the forward pass give the same tokens
    plain = nn.Sequential(model)  # no encode/decode attributes: the generic path
    assert torch.equal(greedy_decode(plain, x[:, 0]), decoded)


def test_train_job_records_bleu_and_dataset_carries_it(tmp_path):
    from lltax.config.schema import section_settings
    from lltax.jobs.train import run_train_job
    from lltax.results.tables import aggregate_metric

    cell = {"width": 8, "batch_size": 32, "label_noise": 0.0, "train_fraction": 0.02, "learning_rate": 0.05, "weight_decay": 0.0}
    train = section_settings("train", {"epochs": 1, "eval_batch_size": 1000})
    dataset = {"name": "langpair", "download": False, "augment": False, "label_noise_mode": "exact"}
    from lltax.config.grid import cell_path

    folder = tmp_path / "results" / cell_path(cell) / "seed=0"
    summary = run_train_job(
        cell=cell,
        seed=0,
        dataset=dataset,
        model_name="transformer",
        model_options={"layers": 1, "heads": 2},
        train_settings=train,
        data_dir=str(tmp_path),
        device="cpu",
        out_dir=folder,
    )
    record = json.loads((folder / "train.json").read_text())
    assert 0.0 <= record["final"]["test_bleu"] <= 100.0 and record["bleu_signature"].startswith("nrefs:1")
    assert summary["final"]["test_bleu"] == record["final"]["test_bleu"]
    config = {"grid": {k: [v] for k, v in cell.items()}, "seeds": [0]}
    table = aggregate_metric("train", tmp_path / "results", config)
    assert float(table["test_bleu"].values.ravel()[0]) == pytest.approx(record["final"]["test_bleu"])
    del record["final"]["test_bleu"]  # a record without BLEU (an image task's): NaN, not an error
    (folder / "train.json").write_text(json.dumps(record))
    assert math.isnan(float(aggregate_metric("train", tmp_path / "results", config)["test_bleu"].values.ravel()[0]))

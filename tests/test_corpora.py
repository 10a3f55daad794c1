"""Parallel corpora from their release files (issue 28): an IWSLT 2016 De-En folder of a few
lines in the real format, written here, loads and is tokenized; the subword vocabulary is
learned once and cached with a checksum."""

from __future__ import annotations

import json
import logging

import pytest
import torch

from lltax.data.corpora import read_plain, read_release, read_tags, read_xml
from lltax.data.loaders import DATASETS
from lltax.data.sequences import EOS, PAD, detokenize
from lltax.data.translation import translation_dataset

GERMAN = ["Vielen Dank, Chris.", "Es ist mir wirklich eine Ehre.", "Ich bin begeistert von dieser Konferenz.", "Danke & gute Nacht."]
ENGLISH = ["Thank you so much, Chris.", "It's truly a great honor.", "I have been blown away by this conference.", "Thanks & good night."]


def tags_file(sentences: list[str], lang: str) -> str:
    """A train.tags file as the 2016-01 release writes it: metadata lines around the talk's lines."""
    head = [
        '<doc docid="1" genre="lectures">',
        "<url>http://www.ted.com/talks/al_gore_on_averting_climate_crisis</url>",
        "<keywords>talks, climate change, culture</keywords>",
        "<speaker>Al Gore</speaker>",
        "<talkid>1</talkid>",
        f"<title>{'Al Gore über die Klimakrise' if lang == 'de' else 'Al Gore on the climate crisis'}</title>",
        f"<description>{'TED Talk: Al Gore' if lang == 'de' else 'TED Talk: Al Gore'}</description>",
    ]
    return "\n".join([*head, *sentences[:3], "</doc>", "<reviewer></reviewer>", "<translator></translator>", sentences[3]]) + "\n"


def xml_file(sentences: list[str], lang: str, kind: str) -> str:
    escaped = [s.replace("&", "&amp;").replace("'", "&apos;") for s in sentences]
    lines = ['<?xml version="1.0" encoding="UTF-8"?>', "<mteval>", f'<{kind} setid="iwslt2016-tst2014" srclang="german" trglang="{lang}">']
    lines += ['<doc docid="1941" genre="lectures">', "<url>http://www.ted.com/talks/x</url>", "<talkid>1941</talkid>", "<title>x</title>"]
    lines += [f'<seg id="{i + 1}"> {text} </seg>' for i, text in enumerate(escaped)]
    return "\n".join([*lines, "</doc>", f"</{kind}>", "</mteval>"]) + "\n"


@pytest.fixture
def release(tmp_path):
    folder = tmp_path / "de-en"
    folder.mkdir()
    for lang, sentences in (("de", GERMAN), ("en", ENGLISH)):
        (folder / f"train.tags.de-en.{lang}").write_text(tags_file(sentences, lang), encoding="utf-8")
        kind = "srcset" if lang == "de" else "refset"
        (folder / f"IWSLT16.TED.tst2014.de-en.{lang}.xml").write_text(xml_file(sentences[1:], lang, kind), encoding="utf-8")
    return tmp_path


def test_release_files_read_as_fairseq_prepares_them(release):
    folder = release / "de-en"
    assert read_tags(folder / "train.tags.de-en.en") == ["Al Gore on the climate crisis", "TED Talk: Al Gore", *ENGLISH]
    assert read_xml(folder / "IWSLT16.TED.tst2014.de-en.en.xml") == ENGLISH[1:]  # entities unescaped, in order
    (train_de, train_en), (test_de, test_en) = read_release(folder, "de", "en")
    assert len(train_de) == len(train_en) == 6 and train_de[2:] == GERMAN and (test_de, test_en) == (GERMAN[1:], ENGLISH[1:])
    (folder / "train.tags.de-en.en").write_text(tags_file(ENGLISH, "en") + "one more\n")
    with pytest.raises(ValueError, match="7 target sentences"):
        read_release(folder, "de", "en")
    (folder / "train.tags.de-en.en").write_text(tags_file(ENGLISH, "en"))
    with pytest.raises(FileNotFoundError, match="lltax never downloads"):
        read_release(folder, "de", "en", test_sets=("tst2013",))
    for split, (de, en) in (("train", (GERMAN, ENGLISH)), ("test", (GERMAN[:1], ENGLISH[:1]))):
        (release / f"{split}.de").write_text("\n".join(de) + "\n")
        (release / f"{split}.en").write_text("\n".join(en) + "\n")
    assert read_plain(release, "de", "en") == ((GERMAN, ENGLISH), (GERMAN[:1], ENGLISH[:1]))


def test_iwslt_corpus_loads_tokenized_with_a_cached_vocabulary(release, caplog):
    caplog.set_level(logging.INFO)
    data = DATASETS["iwslt16_de_en"](str(release))
    assert data.task == "seq2seq" and data.name == "iwslt16_de_en" and data.input_shape == (2, 64)
    assert data.x_train.shape == (6, 2, 64) and data.x_test.shape == (3, 2, 64) and data.vocabulary[:4] == ("<pad>", "<s>", "</s>", "<unk>")
    assert data.num_classes == len(data.vocabulary) and data.x_train.max() < data.num_classes
    assert [detokenize(row, data.vocabulary) for row in data.x_test[:, 1].tolist()] == ENGLISH[1:]  # lossless round trip
    assert [detokenize(row, data.vocabulary) for row in data.x_train[2:, 0].tolist()] == GERMAN
    assert all(EOS in row for row in data.x_train[:, 1].tolist()) and data.x_train[0, 0, -1] == PAD
    model_file = release / "de-en" / "lltax_sentencepiece_10000.model"
    record = json.loads(model_file.with_suffix(".json").read_text())
    assert len(record["training_sha256"]) == 64 and record["settings"]["vocab_size"] == 10000
    caplog.clear()
    again = DATASETS["iwslt16_de_en"](str(release))  # cached: reused, the same tensors
    assert "reused" in caplog.text and torch.equal(again.x_train, data.x_train)
    (release / "de-en" / "train.tags.de-en.en").write_text(tags_file(ENGLISH[::-1], "en"))  # new training text: learned again
    caplog.clear()
    DATASETS["iwslt16_de_en"](str(release))
    assert "learning a 10000-piece" in caplog.text and json.loads(model_file.with_suffix(".json").read_text()) != record


def test_long_and_empty_pairs_are_left_out_and_counted(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    train = (["a b c", "", "a " * 20], ["x y", "z", "y"])
    data = translation_dataset("toy", tmp_path, train, (["a b"], ["x"]), 40, 8)
    assert len(data.x_train) == 1 and "2 of 3 pairs left out" in caplog.text
    with pytest.raises(ValueError, match="no pair left"):
        translation_dataset("toy", tmp_path, train, ([""], ["x"]), 40, 8)

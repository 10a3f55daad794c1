"""A parallel corpus as a translation ``Dataset``: a subword vocabulary learned once, cached.

The vocabulary is one joint sentencepiece BPE model (Kudo and Richardson 2018) of
``vocabulary_size`` pieces, learned from the training split alone (both languages, as
fairseq's IWSLT recipes share one vocabulary) and cached in the corpus's folder as
``lltax_sentencepiece_<size>.model`` with ``.json`` beside it: the SHA-256 of the training
sentences it was learned from, of the model file and the settings. A job whose training text
or settings differ from the record's (or whose model file changed) learns it again; a lock
file keeps concurrent jobs from learning it twice. Its ids are lltax's (``PAD`` 0, ``BOS``
1, ``EOS`` 2, ``UNK`` 3: ``lltax.data.sequences``), so its pieces are the dataset's vocabulary.

Pairs with an empty side, or a side of ``length`` pieces or more (no room for ``EOS``), are
left out of both splits, and how many is logged: the layout has one length L for all pairs
(``lltax.data.sequences``), and padding every pair to the longest TED sentence would multiply the
cost of every job.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import logging
import os
from pathlib import Path

from lltax.data.dataset import Dataset, seq2seq_dataset
from lltax.data.sequences import BOS, EOS, PAD, UNK, pack_pairs

log = logging.getLogger(__name__)

IWSLT_VOCABULARY, IWSLT_LENGTH = 10000, 64  # configs/yang2021_transformer_iwslt.yaml; contract.DATASET_SIZES
CACHE_FORMAT = 1


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _settings(vocabulary_size: int) -> dict:
    return {
        "model_type": "bpe",
        "vocab_size": vocabulary_size,
        "character_coverage": 1.0,
        "hard_vocab_limit": False,  # a small corpus may have fewer pieces than asked
        "pad_id": PAD,
        "bos_id": BOS,
        "eos_id": EOS,
        "unk_id": UNK,
        "num_threads": 1,  # one thread: the same model from the same text
        "minloglevel": 2,
    }


@contextlib.contextmanager
def _locked(path: Path):
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def subword_model(folder: str | Path, sentences: list[str], vocabulary_size: int):
    """The sentencepiece processor of ``sentences`` (the training split), learned once and cached in ``folder``."""
    import sentencepiece

    folder = Path(folder)
    model_path = folder / f"lltax_sentencepiece_{vocabulary_size}.model"
    record_path = model_path.with_suffix(".json")
    settings = _settings(vocabulary_size)
    expected = {
        "format": CACHE_FORMAT,
        "training_sha256": _sha256("\n".join(sentences).encode()),
        "settings": settings,
        "sentencepiece": sentencepiece.__version__,
    }
    with _locked(model_path.with_suffix(".lock")):
        try:
            record = json.loads(record_path.read_text())
            fresh = {k: record.get(k) for k in expected} == expected and record.get("model_sha256") == _sha256(model_path.read_bytes())
        except (OSError, ValueError):
            fresh = False
        if not fresh:
            log.info(
                "learning a %d-piece sentencepiece vocabulary from %d training sentences -> %s", vocabulary_size, len(sentences), model_path
            )
            model = io.BytesIO()
            sentencepiece.SentencePieceTrainer.train(sentence_iterator=iter(sentences), model_writer=model, **settings)
            for path, data in ((model_path, model.getvalue()), (record_path, None)):
                data = data if data is not None else json.dumps({**expected, "model_sha256": _sha256(model.getvalue())}, indent=1).encode()
                temporary = path.with_name(path.name + ".tmp")
                temporary.write_bytes(data)
                os.replace(temporary, path)
        else:
            log.info("sentencepiece vocabulary %s matches its training text (checksum), reused", model_path)
        return sentencepiece.SentencePieceProcessor(model_file=str(model_path))


def _kept(sources: list[list[int]], targets: list[list[int]], length: int, split: str, name: str):
    keep = [i for i, (s, t) in enumerate(zip(sources, targets)) if s and t and len(s) < length and len(t) < length]
    if len(keep) < len(sources):
        log.info(
            "%s %s: %d of %d pairs left out (a side empty or of %d pieces or more)",
            name,
            split,
            len(sources) - len(keep),
            len(sources),
            length,
        )
    if not keep:
        raise ValueError(f"{name} {split}: no pair left with both sides of 1 to {length - 1} pieces")
    return [sources[i] for i in keep], [targets[i] for i in keep]


def translation_dataset(name: str, folder: str | Path, train, test, vocabulary_size: int, length: int) -> Dataset:
    """A seq2seq ``Dataset`` of sentence pairs ((train sources, targets), (test sources, targets))."""
    processor = subword_model(folder, [*train[0], *train[1]], vocabulary_size)
    splits = []
    for split, (sources, targets) in (("train", train), ("test", test)):
        encoded = _kept(processor.encode(list(sources), out_type=int), processor.encode(list(targets), out_type=int), length, split, name)
        splits.append(pack_pairs(*encoded, length))
    pieces = tuple(processor.id_to_piece(i) for i in range(processor.get_piece_size()))
    return seq2seq_dataset(name, *splits, pieces)


def load_iwslt16_de_en(root: str | Path, download: bool = False) -> Dataset:
    """IWSLT 2016 German to English from the release's files in ``<root>/de-en/`` (lltax.data.corpora):
    train.tags for training, tst2014 as the test set. ``download`` is a loader's argument:
    nothing is downloaded (a missing file is named, with where to place it)."""
    from lltax.data.corpora import read_release

    folder = Path(root) / "de-en"
    train, test = read_release(folder, "de", "en")
    return translation_dataset("iwslt16_de_en", folder, train, test, IWSLT_VOCABULARY, IWSLT_LENGTH)

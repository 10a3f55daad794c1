"""A generated language pair: two small artificial languages with a fixed grammar (issue 28).

The translation benchmark for laptops, CI and the demo: generated in memory from a seed (the
same tensors, byte for byte, for the same arguments), never downloaded, no files. The source
language says

    DET [ADJ] NOUN [PL] VERB [DET [ADJ] NOUN [PL]]

(a determiner "the"/"a", an optional adjective, a noun with an optional plural marker, a verb,
an optional object). The target language differs from it in three ways a translator must learn:

- **vocabulary mapping**: every source word has its own target word;
- **local reordering**: the adjective follows its noun (DET NOUN ADJ);
- **agreement**: each target noun has a fixed gender; its determiner takes one of 8 forms by
  definiteness, gender and number, the noun has a singular and a plural form (the source's PL
  marker disappears), and the verb takes the subject's number (one of 2 forms).

With the defaults (16 nouns, 8 adjectives, 8 verbs; 4000 training and 500 test pairs; 103
tokens in one joint vocabulary, sentences of at most 9 source and 7 target words) a width-32
``transformer`` learns it on two CPU cores in about a minute (docs/translation.md).
"""

from __future__ import annotations

import numpy as np

from lltax.data.dataset import Dataset, seq2seq_dataset
from lltax.data.sequences import SPECIAL_TOKENS, WORD_START, pack_pairs

# The grammar's sizes: part of the data's definition, as MNIST-1D's generator arguments.
NOUNS, ADJECTIVES, VERBS = 16, 8, 8
ADJECTIVE_PROBABILITY, OBJECT_PROBABILITY = 0.5, 0.7
LENGTH = 10  # longest source sentence (9 words) plus EOS


def _words(state: np.random.RandomState, count: int, consonants: str, vowels: str, syllables: int, taken: set) -> list[str]:
    """``count`` new pseudo-words of ``syllables`` consonant-vowel syllables each."""
    words = []
    while len(words) < count:
        word = "".join(consonants[state.randint(len(consonants))] + vowels[state.randint(len(vowels))] for _ in range(syllables))
        if word not in taken:
            taken.add(word)
            words.append(word)
    return words


def _lexicon(state: np.random.RandomState) -> dict:
    """Both languages' words and the target nouns' genders, drawn from ``state``."""
    taken: set[str] = set()
    source = {
        "noun": _words(state, NOUNS, "ptkbdg", "aiu", 2, taken),
        "adjective": _words(state, ADJECTIVES, "mnl", "aiu", 2, taken),
        "verb": _words(state, VERBS, "sfh", "aeiou", 2, taken),
        "determiner": ["ta", "ka"],  # definite, indefinite
        "plural": ["s"],
    }
    target = {
        "noun": _words(state, 2 * NOUNS, "rvzwj", "eoy", 2, taken),  # singular forms, then plural
        "adjective": _words(state, ADJECTIVES, "rvzwj", "ao", 3, taken),
        "verb": _words(state, 2 * VERBS, "cxq", "eoy", 2, taken),  # singular forms, then plural
        "determiner": _words(state, 8, "dlm", "eoy", 1 + 1, taken),  # (definite, gender, number)
    }
    return {"source": source, "target": target, "gender": state.randint(0, 2, size=NOUNS)}


def _vocabulary(lexicon: dict) -> tuple[list[str], dict[str, int]]:
    words = [w for side in ("source", "target") for kind in sorted(lexicon[side]) for w in lexicon[side][kind]]
    pieces = [*SPECIAL_TOKENS, *(WORD_START + w for w in words)]
    return pieces, {w: i + len(SPECIAL_TOKENS) for i, w in enumerate(words)}


def _sentences(state: np.random.RandomState, lexicon: dict, ids: dict[str, int], count: int) -> tuple[list, list]:
    """``count`` random source sentences and their translations, as token-id lists."""
    src, tgt, gender = lexicon["source"], lexicon["target"], lexicon["gender"]

    def phrase(parts_source: list, parts_target: list) -> int:
        definite, noun, plural = state.randint(2), state.randint(NOUNS), state.randint(2)
        adjective = state.randint(ADJECTIVES) if state.random_sample() < ADJECTIVE_PROBABILITY else None
        parts_source += [src["determiner"][definite], *([src["adjective"][adjective]] if adjective is not None else [])]
        parts_source += [src["noun"][noun], *(src["plural"] if plural else [])]
        parts_target += [tgt["determiner"][4 * definite + 2 * gender[noun] + plural], tgt["noun"][noun + NOUNS * plural]]
        parts_target += [tgt["adjective"][adjective]] if adjective is not None else []
        return plural

    sources, targets = [], []
    for _ in range(count):
        source, target = [], []
        plural = phrase(source, target)
        verb = state.randint(VERBS)
        source.append(src["verb"][verb])
        target.append(tgt["verb"][verb + VERBS * plural])  # agrees with the subject
        if state.random_sample() < OBJECT_PROBABILITY:
            phrase(source, target)
        sources.append([ids[w] for w in source])
        targets.append([ids[w] for w in target])
    return sources, targets


def language_pair(root: str | None = None, download: bool = False, *, seed: int = 0, num_train: int = 4000, num_test: int = 500) -> Dataset:
    """The generated pair as a seq2seq ``Dataset`` (``lltax.data.sequences``'s layout, length ``LENGTH``).

    ``root`` and ``download`` are a loader's arguments (``lltax.data.loaders.DATASETS``); nothing is
    read or written. One ``RandomState`` stream (fixed by NumPy, NEP 19) draws the lexicon, then
    the training pairs, then the test pairs.
    """
    state = np.random.RandomState(seed)
    lexicon = _lexicon(state)
    pieces, ids = _vocabulary(lexicon)
    x_train, y_train = pack_pairs(*_sentences(state, lexicon, ids, num_train), LENGTH)
    x_test, y_test = pack_pairs(*_sentences(state, lexicon, ids, num_test), LENGTH)
    return seq2seq_dataset("langpair", (x_train, y_train), (x_test, y_test), tuple(pieces))


def load_language_pair(root: str | None = None, download: bool = False) -> Dataset:
    """``language_pair`` with its defaults (the registered dataset ``langpair``)."""
    return language_pair(root, download)

"""Parallel corpora read from their release files: IWSLT 2016 De-En and any other (issue 28).

Never downloaded: the user places the files of the release in ``data_dir`` (docs/translation.md). For IWSLT the release's folder ``de-en/`` (the WIT3 2016-01 archive
``texts/de/en/de-en.tgz`` unpacked), with

- ``train.tags.de-en.de`` / ``train.tags.de-en.en``: one sentence a line, aligned, between
  metadata lines in tags. As fairseq's ``prepare-iwslt14.sh``: lines of ``<url>``,
  ``<talkid>``, ``<keywords>``, ``<speaker>``, ``<reviewer>``, ``<translator>``, ``<doc ...>``
  and ``</doc>`` are dropped, ``<title>`` and ``<description>`` lines keep their text;
- ``IWSLT16.TED.<set>.de-en.de.xml`` / ``...en.xml`` (dev2010, tst2010-tst2014): one
  ``<seg id="n">`` element a sentence, read in order, XML entities unescaped.

Any other language pair of a WIT3 release reads the same way (``read_release`` with its
folder and languages). A corpus in plain text reads with ``read_plain``: ``train.<src>`` and
``train.<tgt>``, ``test.<src>`` and ``test.<tgt>``, one sentence a line, aligned.
"""

from __future__ import annotations

import re
from pathlib import Path
from xml.sax.saxutils import unescape

# Metadata lines of a train.tags file (fairseq's prepare-iwslt14.sh drops the same).
METADATA_TAGS = ("<url>", "<talkid>", "<keywords>", "<speaker>", "<reviewer>", "<translator>", "<doc", "</doc>")
TEXT_TAGS = re.compile(r"</?(title|description)>")
SEGMENT = re.compile(r"<seg\s+id\s*=\s*\"?[^\">]*\"?\s*>(.*?)</seg>", re.DOTALL)
ENTITIES = {"&quot;": '"', "&apos;": "'"}


def _read(path: Path) -> str:
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} does not exist: place the corpus's release files there (lltax never downloads a corpus; docs/translation.md)"
        )
    return path.read_text(encoding="utf-8")


def read_tags(path: str | Path) -> list[str]:
    """The sentences of a ``train.tags.*`` file: metadata lines dropped, title and description kept."""
    sentences = []
    for line in _read(Path(path)).splitlines():
        text = line.strip()
        if text.startswith(METADATA_TAGS):
            continue
        sentences.append(TEXT_TAGS.sub("", text).strip())
    return sentences


def read_xml(path: str | Path) -> list[str]:
    """The ``<seg>`` sentences of an IWSLT ``*.xml`` file, in order, entities unescaped."""
    return [unescape(segment.strip(), ENTITIES) for segment in SEGMENT.findall(_read(Path(path)))]


def _aligned(source: list[str], target: list[str], where: str) -> tuple[list[str], list[str]]:
    if len(source) != len(target):
        raise ValueError(
            f"{where}: {len(source)} source and {len(target)} target sentences; the files of a pair must be aligned line by line"
        )
    return source, target


def read_release(folder: str | Path, source: str, target: str, test_sets: tuple[str, ...] = ("tst2014",), prefix: str = "IWSLT16.TED"):
    """((train source, train target), (test source, test target)) sentence lists of a WIT3 release.

    ``test_sets``: the ``<set>`` names of the xml files whose pairs form the test split, in
    order; tst2014 by default (1305 pairs for De-En, torchtext's test split of IWSLT 2016).
    """
    folder = Path(folder)
    pair = f"{source}-{target}"
    train = _aligned(*(read_tags(folder / f"train.tags.{pair}.{lang}") for lang in (source, target)), str(folder / f"train.tags.{pair}.*"))
    tests: tuple[list[str], list[str]] = ([], [])
    for name in test_sets:
        sides = _aligned(*(read_xml(folder / f"{prefix}.{name}.{pair}.{lang}.xml") for lang in (source, target)), f"{prefix}.{name}.{pair}")
        tests[0].extend(sides[0])
        tests[1].extend(sides[1])
    return train, tests


def read_plain(folder: str | Path, source: str, target: str):
    """((train source, train target), (test source, test target)) of plain aligned text files."""
    folder = Path(folder)
    splits = []
    for split in ("train", "test"):
        sides = [[line.strip() for line in _read(folder / f"{split}.{lang}").splitlines()] for lang in (source, target)]
        splits.append(_aligned(*sides, str(folder / f"{split}.*")))
    return tuple(splits)

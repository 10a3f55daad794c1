"""What a file is, by content: its SHA-256, the stat that says whether it was touched since, and
which of several files are one (torch-free: the workflow's DAG build uses it)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from lltax.storage.atomic_files import read_json


def file_checksum(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def duplicate_files(files: list[str | Path], checksums: list[str] | None = None) -> list[tuple[str, str]]:
    """Pairs of ``files`` that are one model: the same path, a link to it, or equal content
    (SHA-256 of the bytes, computed here unless ``checksums`` are given in the same order)."""
    checksums = checksums if checksums is not None else [file_checksum(f) if Path(f).is_file() else str(Path(f).resolve()) for f in files]
    seen: dict[str, str] = {}
    pairs = []
    for file, checksum in zip(files, checksums):
        key = checksum
        if key in seen:
            pairs.append((seen[key], str(file)))
        else:
            seen[key] = str(file)
    return pairs


def file_stat(path: str | Path) -> list[int]:
    """What identifies a file's state without reading it: size, modification and change time
    (ns), inode. ``cp -p``, ``rsync -t`` and ``tar`` restore the modification time of replaced
    content, not its change time, which only the kernel sets."""
    info = os.stat(path)
    return [info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_ino]


def current_checksum(path: str | Path, record: str | Path) -> str:
    """The SHA-256 of the file ``path`` now, by content: the import record's own checksum when the
    record names this file and the file's ``file_stat`` is the one recorded then (nothing touched
    it since), else read and hashed. The workflow passes it to each import job as a parameter, so
    a file whose content changed under an unchanged modification time reruns its import (and what
    depends on it) at the start of the next run."""
    try:
        external = read_json(record).get("external") or {}
    except (OSError, ValueError, AttributeError):
        external = {}
    resolved = str(Path(path).resolve())
    if external.get("path") == resolved and external.get("file_stat") == file_stat(resolved) and external.get("file_sha256"):
        return external["file_sha256"]
    return file_checksum(resolved)

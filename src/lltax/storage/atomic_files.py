"""Atomic output files: write to a temporary file in the target folder, then rename.

A killed job therefore never leaves a file that looks complete.
"""

from __future__ import annotations

import glob
import json
import math
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

_UMASK = os.umask(0)
os.umask(_UMASK)


@contextmanager
def atomic_path(path: str | Path, clean_stale: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` if the block succeeds.

    ``clean_stale=False`` for files that several jobs may write at once (the shared data
    cache): their temporaries are not leftovers but other jobs' writes in progress.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Leftovers of a killed earlier write of this same output (a workflow output has one
    # writer at a time: Snakemake runs one job per output), so the next run cleans them up.
    if clean_stale:
        for stale in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
            stale.unlink(missing_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        # mkstemp creates 0600 files; give results the usual permissions (shared clusters).
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _json_safe(obj: Any) -> Any:
    # JSON has no NaN/inf; write them as null so every reader agrees (read back as NaN).
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


def write_json(path: str | Path, obj: Any) -> None:
    """Atomically write ``obj`` as sorted, indented JSON (non-finite floats become null)."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(_json_safe(obj), indent=2, sort_keys=True, allow_nan=False) + "\n")


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text())


class ResultsFolderBusy(RuntimeError):
    """Another workflow run holds the results folder."""


def hold_results_lock(folder: str | Path):
    """Take an exclusive lock on ``<folder>/.lltax.lock`` for the life of this process.

    Snakemake locks outputs per working directory (in its .snakemake folder); two runs on the
    same results folder from different working directories would otherwise overwrite each
    other's files. The lock is an OS file lock (``flock``): released when the process ends,
    however it ends, so a killed run never leaves a stale lock. Returns the open file (keep a
    reference); raises ResultsFolderBusy naming the holder when another process has it.
    """
    import fcntl

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    handle = open(folder / ".lltax.lock", "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        if not isinstance(e, BlockingIOError):
            handle.close()
            raise OSError(
                f"{folder}: the file system of the results folder does not support flock ({e.strerror}; e.g. Lustre mounted "
                "with noflock): lltax locks it so that two runs cannot write it at once; put results_dir on a file system with "
                "flock (or ask for the mount option flock / localflock)"
            ) from None
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise ResultsFolderBusy(
            f"{folder} is in use by another workflow run ({holder}); wait for it to finish or stop it. "
            "Two runs writing one results folder would overwrite each other's files"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()} on {os.uname().nodename}, working directory {os.getcwd()}\n")
    handle.flush()
    return handle


def results_folder_holder(folder: str | Path) -> str | None:
    """Who holds ``<folder>/.lltax.lock`` (another workflow run), or None when nobody does.

    Only looks: the lock is taken (and kept) by ``hold_results_lock`` when a run starts."""
    import fcntl

    lock = Path(folder) / ".lltax.lock"
    if not lock.exists():
        return None
    with open(lock) as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return handle.read().strip() or "another process"
        except OSError:  # no flock on this file system: said when the run starts (hold_results_lock)
            return None
        fcntl.flock(handle, fcntl.LOCK_UN)
    return None


def one_output_each(inputs: list, outputs: list, what: str) -> list[tuple]:
    """(input, output) pairs of a job that handles several items (seeds, checkpoints, curves)
    in one process: one output per input, none written twice, or a ValueError naming both."""
    if len(inputs) != len(outputs):
        raise ValueError(f"give one output per {what}: {len(inputs)} {what}(s) but {len(outputs)} output(s)")
    if len({str(Path(o).resolve()) for o in outputs}) != len(outputs):
        raise ValueError(f"the outputs {[str(o) for o in outputs]} name a file twice")
    return list(zip(inputs, outputs))

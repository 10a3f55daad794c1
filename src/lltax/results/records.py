"""Reading one per-job record and checking it before it is trusted.

A record must say what it was computed from, and that must be what its path and the cell's
checkpoints say: the cell and seed (or pair) of its path, the weights checksum of each
checkpoint it measured, and (train.json) the config hash of the training run that wrote the
checkpoint. Values must be finite numbers inside ``lltax.contract.VALID_RANGES``. Every refusal
names the file and what to do: delete it and rerun the job that writes it.
"""

from __future__ import annotations

import json
import logging
import math
import re
from pathlib import Path

from lltax.config import ConfigError
from lltax.contract import AXES, BOOLEAN_VARIABLES, EXTERNAL_RECORD, MODEL_FILE, VALID_RANGES
from lltax.grid import canonical_value, parse_cell_path
from lltax.io import read_json

log = logging.getLogger(__name__)

SHA256 = re.compile(r"[0-9a-f]{64}")
CONFIG_HASH = re.compile(r"[0-9a-f]{16}")


def read_record(path: Path) -> dict | None:
    """A job's JSON record, or None when the file does not exist (the job has not run)."""
    try:
        record = read_json(path)
    except FileNotFoundError:
        return None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path} is not valid JSON ({e}); delete it and rerun the job that writes it") from e
    except RecursionError:  # JSON nested thousands deep: no job writes that
        raise ValueError(f"{path} is nested too deeply to be an lltax record; delete it and rerun the job that writes it") from None
    if not isinstance(record, dict):
        raise ValueError(f"{path} holds a JSON {type(record).__name__}, expected an object; rerun the job that writes it")
    return record


def number(record: dict, key: str, path: Path, variable: str | None = None) -> float:
    """A finite float (or NaN for JSON null, how write_json spells NaN) from a record.

    Refused, naming the file: a missing key, a non-number, a boolean where a number belongs (or
    a number where a flag belongs), a literal NaN/Infinity or overflow (``1e400``: lltax writes
    null for those), and a value outside ``VALID_RANGES`` of ``variable``.
    """
    *parents, leaf = key.split(".")
    for parent in parents:
        if not isinstance(record.get(parent), dict):
            raise ValueError(f"{path} has no section {parent!r} (keys: {sorted(record)}); rerun the job with this lltax version")
        record = record[parent]
    if leaf not in record:
        raise ValueError(f"{path} has no key {key!r} (keys: {sorted(record)}); rerun the job with this lltax version")
    value = record[leaf]
    if value is None:
        return math.nan
    if variable in BOOLEAN_VARIABLES:
        if not isinstance(value, bool):
            raise ValueError(f"{path}: key {key!r} is {value!r}, expected true or false")
        return float(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{path}: key {key!r} is {value!r}, expected a number or null")
    if not math.isfinite(value):
        raise ValueError(f"{path}: key {key!r} is {value!r}; a non-finite result is written as null, so this file was not written by lltax")
    low, high = VALID_RANGES.get(variable, (-math.inf, math.inf))
    if not low <= value <= high:
        raise ValueError(f"{path}: {variable} = {value!r} is outside [{low:g}, {high:g}], impossible for this metric")
    return float(value)


def check_origin(record: dict, path: Path, cell: str, seed: int | None = None, pair: tuple[int, int] | None = None) -> None:
    """Refuse a per-job record whose recorded cell, seed or pair is not the one its path names.

    A file copied from another cell or seed (or written by an lltax without provenance) would
    otherwise merge silently under the wrong coordinates.
    """
    if "cell" not in record or not isinstance(record["cell"], dict):
        raise ValueError(f"{path} records no cell it was computed for (written by an older lltax?); rerun the job that writes it")
    expected = {k: v for k, v in parse_cell_path(cell).items() if k in AXES}
    try:
        recorded = {k: canonical_value(v) for k, v in record["cell"].items()}
    except (ConfigError, TypeError, ValueError) as e:
        raise ValueError(f"{path}: recorded cell {record['cell']!r} is not a grid cell") from e
    if recorded != expected:
        raise ValueError(f"{path} was computed for cell {recorded}, not for the cell of its path {expected}; delete it and rerun its job")
    if seed is not None and record.get("seed") != seed:
        raise ValueError(
            f"{path} was computed for seed {record.get('seed')!r}, not for seed {seed} of its path; delete it and rerun its job"
        )
    if pair is not None and (record.get("seed_a"), record.get("seed_b")) != pair:
        raise ValueError(
            f"{path} is the curve of seeds {record.get('seed_a')!r}-{record.get('seed_b')!r}, not of pair {pair[0]}-{pair[1]} of its path"
        )


class Checkpoints:
    """The identity of each checkpoint of a results folder (its metadata, read once, weights
    not loaded), against which records are checked.

    A record whose checkpoint is missing (deleted to save space) cannot be compared: its
    checksums are checked for form only, and how many such records there were is logged.
    """

    def __init__(self, results_dir: Path, file: str | None = None):
        """``file``: the checkpoint file name of this run (``model.pt``, or ``checkpoint.json``
        for checkpoints trained elsewhere); None = whichever a seed folder holds, model.pt first."""
        self.results_dir = results_dir
        self.file = file
        self._metas: dict[tuple[str, int], dict | None] = {}
        self.unverified = 0

    def name(self, cell: str, seed: int) -> str:
        if self.file:
            return self.file
        folder = self.results_dir / cell / f"seed={seed}"
        return EXTERNAL_RECORD if not (folder / MODEL_FILE).exists() and (folder / EXTERNAL_RECORD).exists() else MODEL_FILE

    def meta(self, cell: str, seed: int) -> dict | None:
        key = (cell, seed)
        if key not in self._metas:
            path = self.results_dir / cell / f"seed={seed}" / self.name(cell, seed)
            from lltax.checkpoint import read_checkpoint_meta  # torch: only where records are checked

            try:
                self._metas[key] = read_checkpoint_meta(path)
            except FileNotFoundError:
                self._metas[key] = None
        return self._metas[key]

    def check_sha(self, recorded, path: Path, cell: str, seed: int, key: str) -> None:
        """``recorded`` (a record's checksum of seed ``seed``'s weights) is that of the cell's checkpoint."""
        if not isinstance(recorded, str) or not SHA256.fullmatch(recorded) or recorded == "0" * 64:
            raise ValueError(f"{path}: {key} is {recorded!r}, not the weights checksum of a checkpoint; delete it and rerun its job")
        meta = self.meta(cell, seed)
        if meta is None:
            self.unverified += 1
        elif recorded != meta["state_sha256"]:
            raise ValueError(
                f"{path} was computed from another checkpoint of seed {seed} ({key} {recorded[:12]}..., "
                f"but {self.name(cell, seed)} is {meta['state_sha256'][:12]}...): it is stale or copied from another run; delete it and rerun its job"
            )

    def check_config_hash(self, recorded, path: Path, cell: str, seed: int) -> None:
        """train.json's config hash is that of the checkpoint it wrote."""
        if not isinstance(recorded, str) or not CONFIG_HASH.fullmatch(recorded):
            raise ValueError(f"{path}: config_hash is {recorded!r}, not an lltax config hash; delete it and rerun its train job")
        meta = self.meta(cell, seed)
        if meta is None:
            self.unverified += 1
        elif recorded != meta.get("config_hash"):
            raise ValueError(
                f"{path} was written by another training run (config hash {recorded}, but {self.name(cell, seed)} has "
                f"{meta.get('config_hash')}): it is stale or copied from another run; delete it and rerun its train job"
            )

    def check_pair_shas(self, record: dict, path: Path, cell: str, seeds: set[int]) -> None:
        """A per-pair record's ``checkpoints_sha256`` names each of ``seeds`` with its checkpoint's checksum."""
        shas = record.get("checkpoints_sha256")
        if not isinstance(shas, dict):
            raise ValueError(f"{path} records no checkpoints_sha256 (what it was computed from); delete it and rerun its job")
        for seed in sorted(seeds):
            self.check_sha(shas.get(str(seed)), path, cell, seed, f"checkpoints_sha256[{seed}]")

    def report(self, metric: str) -> None:
        if self.unverified:
            log.warning(
                "%s: %d record(s) could not be checked against their checkpoint (%s missing)",
                metric,
                self.unverified,
                self.file or MODEL_FILE,
            )

"""Reading one per-job record and checking it before it is trusted.

A record must say what it was computed from, and that must be what its path and the cell's
checkpoints say: the cell and seed (or pair) of its path, the weights checksum of each
checkpoint it measured, and (train.json) the config hash of the training run that wrote the
checkpoint. With the config it is merged under (its sections ``train``, ``dataset``, ``model``
and the metric's own), a record's own settings and its checkpoints' training settings must be
the config's (``expected_settings``, ``check_settings``): a record computed with other settings,
or a checkpoint trained with another config, is refused naming the file and the key. Values must be finite numbers inside ``lltax.contract.VALID_RANGES``. Every refusal
names the file and what to do: delete it and rerun the job that writes it.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import re
from pathlib import Path

from lltax.config.grid import canonical_value, parse_cell_path
from lltax.config.schema import ConfigError
from lltax.contract import AXES, BOOLEAN_VARIABLES, EXTERNAL_RECORD, METRIC_JOBS, MODEL_FILE, VALID_RANGES
from lltax.storage.atomic_files import read_json

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


# The config section a metric's records were computed with, and the keys its rule leaves out
# (lltax.contract.METRIC_JOBS; the train section is checked for every metric).
METRIC_SECTIONS = {job.metric: (job.section, job.not_passed) for job in METRIC_JOBS if job.section and job.metric != "train"}
# Keys a curve file records as it used them rather than as the config spells them.
CURVE_FIT_RESOLVED = ("epochs",)  # scaled by curves.scale_epochs


def expected_settings(metric: str, config: dict) -> dict | None:
    """What the records of ``metric`` must have been computed with, from the config they are
    merged under: its ``train``, ``dataset`` and ``model`` sections (what the checkpoints were
    trained with) and the metric's own section as its rule passes it. None when the config holds
    no ``train`` section (a grid inferred from paths: nothing to compare with)."""
    if not isinstance(config.get("train"), dict):
        return None
    model = config.get("model") or {}
    expected = {"train": config["train"], "dataset": config.get("dataset") or {}, "model": model}
    if metric in METRIC_SECTIONS:
        name, drop = METRIC_SECTIONS[metric]
        expected[name] = {key: value for key, value in (config.get(name) or {}).items() if key not in drop}
    return expected


def _same(a, b) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    numbers = (int, float)
    if isinstance(a, numbers) and isinstance(b, numbers) and not isinstance(a, bool) and not isinstance(b, bool):
        return float(a) == float(b) or (math.isnan(float(a)) and math.isnan(float(b)))
    return a == b


def check_settings(recorded, expected: dict, path: Path, section: str, job: str, skip: tuple = ()) -> None:
    """Each key of ``expected`` (a config section) that ``recorded`` (what a record or checkpoint
    says it was computed with) holds has the config's value; refused naming the file and key.
    A key the record lacks is not compared (an lltax that had no such setting), nor a record
    that names no settings at all (written before records named them)."""
    if not isinstance(recorded, dict):
        log.info("%s names no %s settings: not compared with the config", path, section)
        return
    for key in sorted(expected):
        if key in recorded and key not in skip and not _same(recorded[key], expected[key]):
            raise ValueError(
                f"{path} was computed with {section}.{key} = {recorded[key]!r}, but the config it is merged under has "
                f"{expected[key]!r}: it is stale or from another run; delete it and rerun its {job} job"
            )


def check_code(runtime, path: Path) -> None:
    """The code a record or checkpoint names (``runtime.code``: its command and the SHA-256 of
    the command's sources when its job started) is the code here now; else it was computed by
    other code (edited while its job ran, or since, without Snakemake seeing it): refused,
    naming the file. A record that names no code (an older lltax) is not compared."""
    code = runtime.get("code") if isinstance(runtime, dict) else None
    if not isinstance(code, dict) or "command" not in code:
        return
    from lltax.commands import COMMANDS

    if code["command"] in COMMANDS and code.get("sources_sha256") != _current_code(code["command"]):
        raise ValueError(
            f"{path} was computed by other code than this lltax's `lltax {code['command']}` (its sources changed since): "
            f"delete it and rerun its job"
        )


@functools.cache
def _current_code(command: str) -> str:
    from lltax.runtime.code_sources import sources_sha256

    return sources_sha256(command)


def check_record_settings(record: dict, path: Path, metric: str, expected: dict | None) -> None:
    """A metric record's own settings against the config's section (``expected_settings``),
    and the code that computed it (``check_code``)."""
    check_code(record.get("runtime"), path)
    if expected is None or metric not in METRIC_SECTIONS:
        return
    name = METRIC_SECTIONS[metric][0]
    check_settings(record.get("settings"), expected[name], path, name, metric)
    if metric == "curves":  # and the settings the curve was fitted with, recorded from the curve file
        check_settings(record.get("fit_settings"), expected[name], path, name, "curve_fit", skip=CURVE_FIT_RESOLVED)


class Checkpoints:
    """The identity of each checkpoint of a results folder (its metadata, read once, weights
    not loaded), against which records are checked.

    A record whose checkpoint is missing (deleted to save space) cannot be compared: its
    checksums are checked for form only, and how many such records there were is logged.
    """

    def __init__(self, results_dir: Path, file: str | None = None, expected: dict | None = None):
        """``file``: the checkpoint file name of this run (``model.pt``, or ``checkpoint.json``
        for checkpoints trained elsewhere); None = whichever a seed folder holds, model.pt first.
        ``expected`` (``expected_settings``): each checkpoint's training settings, data and
        model are checked against it when first read."""
        self.results_dir = results_dir
        self.file = file
        self.expected = expected
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
            from lltax.storage.checkpoint import read_checkpoint_meta  # torch: only where records are checked

            try:
                self._metas[key] = read_checkpoint_meta(path)
            except FileNotFoundError:
                self._metas[key] = None
            if self._metas[key] is not None and self.expected is not None:
                self.check_trained_with(self._metas[key], path)
        return self._metas[key]

    def check_trained_with(self, meta: dict, path: Path) -> None:
        """A checkpoint (and so every record computed from it) was trained, or imported, with the
        config's ``train`` and ``dataset`` sections and its model: a model copied in from a run
        of another config is refused naming the file and the key (its config hash covers the
        same settings, but only agrees with the train.json copied beside it)."""
        job = "import" if path.name == EXTERNAL_RECORD else "train"
        check_code(meta.get("runtime"), path)
        check_settings(meta.get("train"), self.expected["train"], path, "train", job)
        check_settings(meta.get("dataset"), self.expected["dataset"], path, "dataset", job)
        model = self.expected["model"]
        recorded = {"name": meta["model"]} if "model" in meta else {}
        recorded.update({"options": meta["model_options"]} if "model_options" in meta else {})
        check_settings(recorded, {key: model[key] for key in ("name", "options") if key in model}, path, "model", job)

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

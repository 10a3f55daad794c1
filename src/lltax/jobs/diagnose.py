"""``lltax diagnose``: the phase of one training setting from its checkpoints, with the paper's advice.

For models trained anywhere: ``--files`` are the checkpoints of one setting (one per seed),
``--config`` an lltax config whose grid is that one setting (model, dataset, the training
settings the criteria need, metric sections). Every step is the workflow's own job command,
run in this process (``lltax import``, ``hessian``, ``basin``, ``cka``, ``curve-fit``, ``curve-eval``),
then the dataset is aggregated and classified as the workflow does; everything is written
under ``<results_dir>/<experiment>/`` (``diagnosis.json`` says from which files and config) and
nothing is cached: a second call deletes the files an earlier diagnosis wrote there (by their
names, ``OWN_FILE``) and refuses a folder that holds anything else, naming it: a workflow's
results, the user's own files (a checkpoint saved there) are never deleted.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
from pathlib import Path

from lltax import cli
from lltax.config.grid import CELL_REGEX, canonical_json, canonical_path, cell_path, expand_grid, seed_pairs
from lltax.config.schema import read_config_file, validate_config
from lltax.contract import (
    CKA_RECORD,
    CURVE_EVAL_KEYS,
    CURVE_FILE,
    CURVE_FIT_NOT_PASSED,
    CURVE_RECORD,
    DIAGNOSIS_MARKER,
    DISTANCE_RECORD,
    EXTERNAL_RECORD,
    HESSIAN_RECORD,
    METRIC_JOB,
    METRIC_JOBS,
    NOT_IN_DATASET,
    ConfigError,
)
from lltax.storage.atomic_files import write_json
from lltax.storage.foreign_checkpoints import duplicate_files

log = logging.getLogger(__name__)

HELP = "diagnose one training setting from its checkpoints: phase, confidence, reason, measurements against thresholds, advice"
ARGUMENTS = {
    "config": {"required": True, "help": "config YAML whose grid is the one setting the checkpoints were trained with"},
    "files": {"help": "the setting's checkpoint files, one per seed (two or more for mode connectivity and CKA)"},
    "device": {},
}
MARKER = DIAGNOSIS_MARKER  # what a diagnosis folder was computed from; marks it as lltax diagnose's own
# Every file a diagnosis writes, relative to its folder: what a later diagnosis may delete.
_SEED_RECORDS = "|".join(re.escape(job.record) for job in METRIC_JOBS if job.scope == "seed")
_CELL_RECORDS = "|".join(re.escape(job.record) for job in METRIC_JOBS if job.scope in ("pairs", "cell"))
OWN_FILE = re.compile(
    rf"({re.escape(MARKER)}|dataset\.nc|phases\.nc|{CELL_REGEX}/({_CELL_RECORDS})"
    rf"|{CELL_REGEX}/seed=\d+/({re.escape(EXTERNAL_RECORD)}|{_SEED_RECORDS})"
    rf"|{CELL_REGEX}/pair=\d+-\d+/({CURVE_FILE}|{CURVE_RECORD}))"
    r"|(.*/)?\.[^/]+\.tmp"  # a killed write's temporary (lltax.storage.atomic_files.atomic_path)
)


def diagnosis_config(raw: dict, files: list[str]) -> dict:
    """The resolved config of a diagnosis: seeds 0..n-1 for the n files, curves between every
    pair of them unless the config says otherwise (three seeds give three curves, enough for a
    confidence), none for one file."""
    if not isinstance(raw, dict):
        raise ConfigError(f"config must be a mapping of keys to values, got {type(raw).__name__}")
    raw = dict(raw)
    if "seeds" in raw:
        given = raw["seeds"]
        count = given if isinstance(given, int) and not isinstance(given, bool) else len(given) if isinstance(given, list) else None
        if count != len(files):
            raise ConfigError(f"config key 'seeds' is {given!r} but {len(files)} checkpoint files were given; one seed per file")
    raw.setdefault("seeds", len(files))
    curves = dict(raw.get("curves") or {})
    curves.setdefault("pairs", "all")
    if len(files) < 2:
        curves["enabled"] = False
    raw["curves"] = curves
    config = validate_config(raw)
    if len(expand_grid(config["grid"])) != 1:
        raise ConfigError(
            "config key 'grid': lltax diagnose takes one setting (one value per grid axis); for a grid of checkpoints "
            "set checkpoints.path and run the workflow"
        )
    return config


def claim_folder(results: Path, files: list[str] = ()) -> None:
    """Empty ``results`` for a new diagnosis: only the files an earlier diagnosis wrote there are
    deleted (``OWN_FILE``, then the folders they leave empty). Anything else in it (a workflow's
    results, a file of the user's, a link, one of ``files`` to diagnose) is refused, naming it,
    before anything is deleted."""
    if not results.exists():
        return
    if not results.is_dir() or results.is_symlink():
        raise ValueError(f"{results} is not a folder; choose another experiment name or results_dir")
    if any(results.iterdir()) and not (results / MARKER).is_file():
        raise ValueError(
            f"{results} holds results that lltax diagnose did not write (a workflow run?); choose another experiment name "
            "or results_dir for the diagnosis"
        )
    inputs = {Path(f).resolve() for f in files}
    own, foreign, folders = [], [], []
    for folder, subfolders, names in os.walk(results):
        for name in subfolders:
            path = Path(folder) / name
            (foreign if path.is_symlink() else folders).append(path)
        for name in names:
            path = Path(folder) / name
            relative = path.relative_to(results).as_posix()
            mine = OWN_FILE.fullmatch(relative) and not path.is_symlink() and path.resolve() not in inputs
            (own if mine else foreign).append(path)
    if foreign:
        shown = ", ".join(str(p) for p in sorted(foreign)[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise ValueError(
            f"{results} holds {len(foreign)} file(s) lltax diagnose did not write: {shown}; nothing was deleted. "
            "Move them out (a checkpoint to diagnose belongs outside the diagnosis folder) or choose another experiment name "
            "or results_dir for the diagnosis"
        )
    for path in own:
        path.unlink()
    for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):
        if not any(folder.iterdir()):
            folder.rmdir()


def check_distinct(files: list[str]) -> None:
    """Two seeds must be two models: the same file twice, a link to it or a copy of it (equal
    content) is refused, naming both files."""
    same = duplicate_files(files)
    if same:
        (first, second), *_ = same
        raise ConfigError(
            f"checkpoints {first} and {second} are the same file or have the same content: two seeds of one setting must be "
            "two trained models (mode connectivity and CKA of a model with itself say nothing)"
        )


def run(args: argparse.Namespace) -> int:
    from lltax.phases.classify import classify
    from lltax.phases.diagnosis import cell_report
    from lltax.results.infer import aggregate_all
    from lltax.results.netcdf import write_dataset
    from lltax.runtime.device import configure_torch, resolve_device

    configure_torch(args.threads)
    config = diagnosis_config(read_config_file(args.config), args.files)
    cell = cell_path(expand_grid(config["grid"])[0])
    results = Path(config["results_dir"]) / config["experiment"]
    check_distinct(args.files)
    claim_folder(results, args.files)
    seeds = config["seeds"]
    device = str(resolve_device(args.device))
    data_dir = canonical_path(config["data_dir"])
    common = ["--data-dir", data_dir, "--device", device, "--threads", str(args.threads)]
    seed_dirs = [results / cell / f"seed={seed}" for seed in seeds]
    records = {seed: str(folder / EXTERNAL_RECORD) for seed, folder in zip(seeds, seed_dirs)}

    def step(*argv) -> None:
        log.info("lltax %s", argv[0])
        cli.run([str(a) for a in argv] + common)

    write_json(results / MARKER, {"config": config, "files": [str(Path(f).resolve()) for f in args.files]})
    formats = {key: value for key, value in config["checkpoints"].items() if key != "path"}
    step(
        "import",
        "--cell",
        cell,
        "--seeds",
        *seeds,
        "--files",
        *args.files,
        "--dataset-settings",
        canonical_json(config["dataset"]),
        "--model",
        config["model"]["name"],
        "--settings",
        canonical_json(config["train"]),
        "--checkpoint-settings",
        canonical_json(formats),
        "--out-dir",
        *seed_dirs,
    )
    step(
        "hessian",
        "--checkpoints",
        *records.values(),
        "--settings",
        canonical_json(config["hessian"]),
        "--out",
        *[folder / HESSIAN_RECORD for folder in seed_dirs],
    )
    # basin, and every metric of the table without a rule of its own (the workflow's seed_metric)
    for job in [METRIC_JOB["basin"]] + [job for job in METRIC_JOBS if job.rule is None]:
        if config[job.section].get("enabled", True):
            settings = canonical_json(job.passed_settings(config))
            step(job.command, "--checkpoints", *records.values(), "--settings", settings, "--out", *[f / job.record for f in seed_dirs])
    if len(seeds) >= 2:
        step(
            "cka",
            "--checkpoints",
            *records.values(),
            "--settings",
            canonical_json(config["cka"]),
            "--out",
            results / cell / CKA_RECORD,
            "--distance-out",
            results / cell / DISTANCE_RECORD,
        )
    if config["curves"]["enabled"]:
        fitting = canonical_json({k: v for k, v in config["curves"].items() if k not in CURVE_FIT_NOT_PASSED})
        evaluation = canonical_json({k: config["curves"][k] for k in CURVE_EVAL_KEYS})
        for a, b in seed_pairs(seeds, config["curves"]["pairs"]):
            pair = results / cell / f"pair={a}-{b}"
            step("curve-fit", "--checkpoints", records[a], records[b], "--settings", fitting, "--out", pair / CURVE_FILE)
            step(
                "curve-eval",
                "--curves",
                pair / CURVE_FILE,
                "--settings",
                evaluation,
                "--out",
                pair / CURVE_RECORD,
            )

    dataset_config = {
        **{k: v for k, v in config.items() if k not in NOT_IN_DATASET},
        "data_dir": data_dir,
        "device": device,
        "threads": args.threads,
    }
    dataset = aggregate_all(results, dataset_config)
    phases = classify(dataset, **config["classify"])
    write_dataset(dataset, results / "dataset.nc")
    write_dataset(phases, results / "phases.nc")
    print(cell_report(phases, len(seeds)))
    print(f"wrote {results / 'dataset.nc'} and {results / 'phases.nc'}")
    return 0

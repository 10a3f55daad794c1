"""``lltax aggregate`` (by hand): every metric of a results folder, merged into one dataset.nc."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from lltax.config.grid import canonical_json
from lltax.config.schema import load_config
from lltax.contract import CURVE_FILE, EXTERNAL_RECORD, LANDSCAPE_FILE, METRIC_JOBS, MODEL_FILE
from lltax.results.infer import aggregate_all, infer_config
from lltax.results.netcdf import write_dataset

log = logging.getLogger(__name__)

PER_JOB_NAMES = (MODEL_FILE, EXTERNAL_RECORD, CURVE_FILE, LANDSCAPE_FILE, *(job.record for job in METRIC_JOBS))

HELP = "all metrics + merge of a results folder, by hand"
ARGUMENTS = {
    "results_dir": {},
    "config": {"help": "config.yaml of the run (default: infer grid and seeds from the paths)"},
    "out": {"nargs": None, "help": "output dataset.nc"},
}


def run(args: argparse.Namespace) -> int:
    out = Path(args.out).resolve()
    inside = (
        out.parent.relative_to(Path(args.results_dir).resolve()) if out.parent.is_relative_to(Path(args.results_dir).resolve()) else None
    )
    if out.name in PER_JOB_NAMES or (inside is not None and any("=" in part for part in inside.parts)):
        raise ValueError(
            f"--out {args.out} would overwrite a per-job file of the results folder; write the dataset elsewhere, e.g. <results>/dataset.nc"
        )
    config = load_config(args.config) if args.config else infer_config(args.results_dir)
    if not args.config:
        log.info("grid inferred from %s: %s", args.results_dir, canonical_json(config))
    write_dataset(aggregate_all(args.results_dir, config), args.out)
    log.info("wrote %s", args.out)
    return 0

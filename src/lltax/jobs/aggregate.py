"""``lltax aggregate`` (by hand): every metric of a results folder, merged into one dataset.nc."""

from __future__ import annotations

import argparse
import logging

from lltax.config import load_config
from lltax.grid import canonical_json
from lltax.results.infer import aggregate_all, infer_config
from lltax.results.netcdf import write_dataset

log = logging.getLogger(__name__)

HELP = "all metrics + merge of a results folder, by hand"
ARGUMENTS = {
    "results_dir": {},
    "config": {"help": "config.yaml of the run (default: infer grid and seeds from the paths)"},
    "out": {"nargs": None, "help": "output dataset.nc"},
}


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config) if args.config else infer_config(args.results_dir)
    if not args.config:
        log.info("grid inferred from %s: %s", args.results_dir, canonical_json(config))
    write_dataset(aggregate_all(args.results_dir, config), args.out)
    log.info("wrote %s", args.out)
    return 0

"""``lltax merge``: per-metric tables -> dataset.nc."""

from __future__ import annotations

import argparse
import logging

from lltax.jobs.aggregate_metric import parse_config_json
from lltax.results.netcdf import merge_metrics, read_dataset, write_dataset

log = logging.getLogger(__name__)

HELP = "merge per-metric tables into dataset.nc"
ARGUMENTS = {
    "tables": {},
    "config_json": {"help": "the resolved config (stored in the dataset's attributes)"},
    "out": {"nargs": None, "help": "output dataset.nc"},
}


def run(args: argparse.Namespace) -> int:
    merged = merge_metrics([read_dataset(path) for path in args.tables], parse_config_json(args.config_json), sources=args.tables)
    write_dataset(merged, args.out)
    log.info("wrote %s", args.out)
    return 0

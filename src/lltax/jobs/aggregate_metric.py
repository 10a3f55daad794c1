"""``lltax aggregate-metric``: one metric's per-job records -> its table over the full grid."""

from __future__ import annotations

import argparse
import json
import logging

from lltax.config.schema import ConfigError
from lltax.contract import METRICS
from lltax.results.netcdf import write_dataset
from lltax.results.tables import aggregate_metric

log = logging.getLogger(__name__)

HELP = "one metric's per-job JSON files -> a netCDF table over the full grid"
ARGUMENTS = {
    "metric": {"choices": METRICS},
    "results_dir": {},
    "config_json": {"help": "canonical JSON with grid, seeds (and curves for curves)"},
    "out": {"nargs": None, "help": "output table, e.g. results/<experiment>/aggregate/<metric>.nc"},
}


def parse_config_json(text: str) -> dict:
    try:
        config = json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(f"--config-json is not valid JSON ({e}): {text[:200]!r}") from e
    except RecursionError:
        raise ConfigError("--config-json is nested too deeply to be a config") from None
    if not isinstance(config, dict):
        raise ConfigError("--config-json must be a JSON object holding at least 'grid' and 'seeds'")
    return config


def run(args: argparse.Namespace) -> int:
    table = aggregate_metric(args.metric, args.results_dir, parse_config_json(args.config_json))
    write_dataset(table, args.out)
    log.info("wrote %s", args.out)
    return 0

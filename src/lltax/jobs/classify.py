"""``lltax classify``: every grid cell of dataset.nc into a loss-landscape phase -> phases.nc."""

from __future__ import annotations

import argparse
import json
import logging

from lltax.config.schema import parse_settings
from lltax.contract import PHASES
from lltax.phases.classify import classify
from lltax.results.netcdf import read_dataset, write_dataset

log = logging.getLogger(__name__)

HELP = "classify every grid cell into a loss-landscape phase"
ARGUMENTS = {
    "dataset": {},
    "settings": {"help": "the config section 'classify' as JSON"},
    "out": {"nargs": None, "help": "output phases.nc"},
}


def run(args: argparse.Namespace) -> int:
    phases = classify(read_dataset(args.dataset), **parse_settings(args.settings, "classify"))
    for name, text in json.loads(phases.attrs["criteria"]).items():
        print(f"{name}: {text}")
    counts = {p: int((phases["phase"].values == p).sum()) for p in PHASES}
    print("cells per phase: " + ", ".join(f"{p}: {n}" for p, n in counts.items() if n))
    for phase in PHASES:
        cells = phases["phase"].values == phase
        if cells.any():
            knob = str(phases["advice_knob"].values[cells].ravel()[0])
            if knob:
                print(f"advice for {phase} ({int(cells.sum())} cells), knob: {knob}: {phases['advice'].values[cells].ravel()[0]}")
    thin = sum("thin evidence" in reason for reason in phases["phase_reason"].values.ravel().tolist())
    if thin:
        print(f"{thin} cells have thin evidence (too few samples for a measured spread): no confidence")
    write_dataset(phases, args.out)
    log.info("wrote %s", args.out)
    return 0

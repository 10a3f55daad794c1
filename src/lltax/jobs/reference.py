"""``lltax reference``: the paper's published ResNet18/CIFAR-10 results as a dataset.nc."""

from __future__ import annotations

import argparse
from pathlib import Path

from lltax.phases.paper_reference import load_reference, reference_dir
from lltax.results.netcdf import write_dataset

HELP = "the paper's published ResNet18/CIFAR-10 results as a dataset.nc (for classify/plot)"
ARGUMENTS = {
    "reference_dir": {},
    "out": {"nargs": None, "help": "output netCDF in the dataset contract"},
}


def run(args: argparse.Namespace) -> int:
    directory = Path(args.reference_dir) if args.reference_dir else reference_dir()
    if not (directory / "per_model.csv").exists():
        raise FileNotFoundError(f"no per_model.csv in {directory}; pass --reference-dir <folder with the paper's CSVs>")
    write_dataset(load_reference(directory), args.out)
    return 0

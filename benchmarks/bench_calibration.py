"""Calibration of ``phase_confidence``: does a cell reported at confidence p keep its label in a
replicate run with new seeds p of the time?

Runs of the same grid with disjoint seed sets (``benchmarks/calibration/seeds_{a,b}.yaml``) are
classified each on its own; every cell of one run is compared with the same cell of the other,
in both directions, and the share of cells whose label agrees is reported per confidence bin.
Goal (issue 7): among cells reported at confidence >= 0.9, at least 90 % keep their label.

    snakemake --cores all --configfile benchmarks/calibration/seeds_a.yaml --until merge
    snakemake --cores all --configfile benchmarks/calibration/seeds_b.yaml --until merge
    python benchmarks/bench_calibration.py results/calibration_seeds_a/dataset.nc results/calibration_seeds_b/dataset.nc
"""

from __future__ import annotations

import argparse
import itertools
import json

import numpy as np

from lltax.phases.classify import classify, phase_table
from lltax.results.netcdf import read_dataset

BINS = [(0.0, 0.5), (0.5, 0.7), (0.7, 0.9), (0.9, 1.0001)]


def compare(runs: list, names: list[str]) -> list[tuple[float, bool, str, str]]:
    """(confidence of the first, labels agree, label of the first, cell) per cell and ordered pair of runs."""
    rows = []
    for (first, name_a), (second, name_b) in itertools.permutations(zip(runs, names), 2):
        phases_a = first["phase"].values.ravel().astype(str)
        phases_b = second["phase"].values.ravel().astype(str)
        confidence = first["phase_confidence"].values.ravel()
        for index, (a, b, c) in enumerate(zip(phases_a, phases_b, confidence)):
            rows.append((float(c), a == b, a, f"{name_a}->{name_b} #{index}"))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("datasets", nargs="+", help="dataset.nc of replicate runs (same grid, disjoint seeds)")
    parser.add_argument("--settings", default="{}", help="classify settings as JSON (default: the defaults)")
    args = parser.parse_args()
    settings = json.loads(args.settings)
    runs = [classify(read_dataset(path), **settings) for path in args.datasets]
    for path, run in zip(args.datasets, runs):
        print(f"\n{path}: seeds {run['seed'].values.tolist()}")
        print(phase_table(run))
        print(phase_table(run, variable="phase_confidence"))
    rows = compare(runs, args.datasets)
    labelled = [r for r in rows if r[2] not in ("unknown", "diverged")]
    print(f"\n{len(rows)} cell comparisons, {len(labelled)} with a label in the first run")
    print("\n| confidence bin | cells | label kept in the replicate |\n|---|---|---|")
    for low, high in BINS:
        members = [r for r in labelled if np.isfinite(r[0]) and low <= r[0] < high]
        share = f"{np.mean([r[1] for r in members]):.0%}" if members else "-"
        print(f"| [{low:.1f}, {min(high, 1.0):.1f}] | {len(members)} | {share} |")
    thin = [r for r in labelled if not np.isfinite(r[0])]
    if thin:
        print(f"| thin evidence (no confidence) | {len(thin)} | {np.mean([r[1] for r in thin]):.0%} |")
    unknown = [r for r in rows if r[2] == "unknown"]
    print(f"| unknown (no label) | {len(unknown)} | |")
    confident = [r for r in labelled if np.isfinite(r[0]) and r[0] >= 0.9]
    if confident:
        print(
            f"\nconfidence >= 0.9: {sum(r[1] for r in confident)} of {len(confident)} kept their label ({np.mean([r[1] for r in confident]):.0%}; goal >= 90 %)"
        )


if __name__ == "__main__":
    main()

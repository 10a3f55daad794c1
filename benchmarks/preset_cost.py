"""Jobs and estimated device hours of each preset in configs/ (no GPU needed: an estimate).

    python benchmarks/preset_cost.py [configs/*.yaml]

Per preset: cells, jobs per rule (as the workflow plans them: one per cell and rule), and device hours summed over
every job from lltax.cost.estimate_seconds (startup + steps x step overhead + FLOPs /
throughput; no safety factor). The figures rest on the config's `cluster` settings: by
default 10 TFLOP/s sustained and 5 ms per step on a GPU, 60 s start-up per job. They are an
estimate from FLOP counts, not a measurement: calibrate `cluster.tflops` and
`cluster.step_overhead_ms` from the benchmark files of a few real jobs before you plan.
"""

import sys
from pathlib import Path

import yaml

from lltax.config import validate_config
from lltax.cost import estimate_seconds
from lltax.grid import expand_grid, seed_pairs

# One job per cell and rule (a cell's seeds or curve pairs in turn); cka writes the distances too.
RULES = ("train", "hessian", "cka", "curve_fit", "curve_eval", "landscape")


def preset_cost(path: Path) -> dict:
    config = validate_config(yaml.safe_load(path.read_text()))
    config = {**config, "device": "cuda" if config["device"] == "cuda" else "cpu"}  # auto: estimated for the CPU
    cells = expand_grid(config["grid"])
    pairs = seed_pairs(config["seeds"], config["curves"]["pairs"]) if config["curves"]["enabled"] else []
    skipped = {"curve_fit", "curve_eval"} if not pairs else set()
    if not (config["landscape"]["enabled"] and len(config["seeds"]) >= 2):
        skipped.add("landscape")
    jobs, seconds = {}, {}
    for rule in RULES:
        jobs[rule] = 0 if rule in skipped else len(cells)
        seconds[rule] = 0.0 if rule in skipped else sum(estimate_seconds(rule, cell, config) for cell in cells)
    return {"cells": len(cells), "jobs": jobs, "hours": {rule: s / 3600 for rule, s in seconds.items()}}


def main(paths: list[str]) -> None:
    print("| preset | cells | jobs (all rules) | train | hessian | curve_fit | est. device hours (train / all) |")
    print("|---|---|---|---|---|---|---|")
    for path in map(Path, paths):
        cost = preset_cost(path)
        jobs, hours = cost["jobs"], cost["hours"]
        total_jobs = sum(jobs.values()) + (5 if jobs["curve_fit"] else 4) + 4  # + tables, merge, classify, plots, all
        print(
            f"| {path.stem} | {cost['cells']} | {total_jobs} | {jobs['train']} | {jobs['hessian']} | {jobs['curve_fit']} "
            f"| {hours['train']:,.0f} / {sum(hours.values()):,.0f} |"
        )


if __name__ == "__main__":
    main(sys.argv[1:] or sorted(str(p) for p in Path("configs").glob("*.yaml")))

"""Jobs and estimated device hours of each preset in configs/ (no GPU needed: an estimate).

    python benchmarks/preset_cost.py [configs/*.yaml]
    python benchmarks/preset_cost.py --modes configs/yang2021_resnet18_cifar10.yaml   # GPU-hours per training mode

Per preset: cells, jobs per rule (as the workflow plans them: one per cell and rule), and device hours summed over
every job from lltax.runtime.cost.estimate_seconds (startup + items x, per item, the larger of
steps x launch cost and FLOPs / throughput on a GPU, their sum on a CPU; no safety factor). The
figures rest on the config's `cluster` settings and lltax.runtime.cost's per-mode defaults (GPU_TFLOPS,
LAUNCH_MS), 60 s start-up per job. They are an
estimate from FLOP counts, not a measurement: calibrate `cluster.tflops` and
`cluster.step_overhead_ms` from the benchmark files of a few real jobs before you plan.
"""

import sys
from pathlib import Path

import yaml

from lltax.config.grid import expand_grid, seed_pairs
from lltax.config.schema import validate_config
from lltax.runtime.cost import estimate_seconds

# The rules whose jobs cost GPU time; cka writes the distances too.
RULES = ("train", "hessian", "cka", "curve_fit", "curve_eval", "landscape")


def preset_cost(path: Path) -> dict:
    config = validate_config(yaml.safe_load(path.read_text()))
    return preset_cost_of({**config, "device": "cuda" if config["device"] == "cuda" else "cpu"})  # auto: estimated for the CPU


def preset_cost_of(config: dict) -> dict:
    cells = expand_grid(config["grid"])
    pairs = seed_pairs(config["seeds"], config["curves"]["pairs"]) if config["curves"]["enabled"] else []
    skipped = {"curve_fit", "curve_eval"} if not pairs else set()
    if not (config["landscape"]["enabled"] and len(config["seeds"]) >= 2):
        skipped.add("landscape")
    # cluster.seeds_per_job 1: a train job per seed and a curve_fit job per pair, each estimated
    # for its one seed or pair (lltax.runtime.cost.items_per_job); else one job per cell for all of them.
    one = config["cluster"]["seeds_per_job"] == 1
    per_cell = {"train": len(config["seeds"]) if one else 1, "curve_fit": len(pairs) if one else 1}
    jobs, seconds = {}, {}
    for rule in RULES:
        jobs[rule] = 0 if rule in skipped else len(cells) * per_cell.get(rule, 1)
        seconds[rule] = 0.0 if rule in skipped else per_cell.get(rule, 1) * sum(estimate_seconds(rule, cell, config) for cell in cells)
    return {"cells": len(cells), "jobs": jobs, "hours": {rule: s / 3600 for rule, s in seconds.items()}}


# Training settings of the speed modes (train.precision, channels_last, compile), as gpu_check.py names them.
MODES = {
    "default (fp32, eager)": {},
    "tf32": {"precision": "tf32"},
    "bf16": {"precision": "bf16"},
    "bf16 + channels_last + compile": {"precision": "bf16", "channels_last": True, "compile": "default"},
    "bf16 + channels_last + CUDA graphs": {"precision": "bf16", "channels_last": True, "compile": "reduce-overhead"},
}


def modes_table(path: Path) -> None:
    """GPU-hours of one preset per training mode (device cuda; metric jobs stay IEEE fp32)."""
    raw = yaml.safe_load(path.read_text())
    print(f"{path.stem}, device cuda: estimated GPU-hours (train / all rules)")
    print("| mode | train | all |")
    print("|---|---|---|")
    for name, train in MODES.items():
        config = {**raw, "device": "cuda", "train": {**raw.get("train", {}), **train}}
        cost = preset_cost_of(validate_config(config))
        hours = cost["hours"]
        print(f"| {name} | {hours['train']:,.0f} | {sum(hours.values()):,.0f} |")


def main(paths: list[str]) -> None:
    if paths and paths[0] == "--modes":
        for path in paths[1:]:
            modes_table(Path(path))
        return
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

"""Running the Snakemake workflow from tests: a copy of it in a temporary folder, `snakemake`
in a subprocess, and what a dry run plans, read from Snakemake's own output.

Job counts are never written down in a test: `expected_job_counts` derives them from a config
(its grid, seeds, curves and switches), and `rerun_counts` derives which jobs an edit reruns
from the jobs' files as a forced dry run lists them (the rules' DAG), so a new rule or a
changed grid edits no test.
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]

TINY = {
    "experiment": "tiny",
    "device": "cpu",
    "dataset": {"name": "mnist1d"},
    "model": {"name": "resnet1d"},
    "grid": {"width": [2, 4], "batch_size": [32, 64], "train_fraction": [0.1], "learning_rate": [0.05]},
    "seeds": 2,
    "train": {"epochs": 1},
    "hessian": {"num_samples": 32, "chunk_size": 32, "max_iterations": 30, "trace_probes": 9},
    "cka": {"num_samples": 64, "batch_size": 32},
    "curves": {"epochs": 1, "batch_size": 64},
    "landscape": {"num_samples": 64, "points_1d": 5, "points_2d": 3},
}


def _without_slurm_probe() -> str:
    """A folder with an `scontrol` that fails at once, put first on the workflow tests' PATH.

    With SLURM's client tools installed but no controller running (CI installs them for
    tests/test_slurm_cluster.py), the SLURM executor plugin runs `scontrol show config` when
    Snakemake loads it, at every start, and that waits ~9 s for the absent controller. These
    tests use no cluster; the real-cluster tests keep the real `scontrol`."""
    folder = Path(tempfile.mkdtemp(prefix="lltax-no-slurm-"))
    (folder / "scontrol").write_text("#!/bin/sh\nexit 1\n")
    (folder / "scontrol").chmod(0o755)
    return str(folder)


NO_SLURM_PROBE = _without_slurm_probe() if shutil.which("scontrol") else ""


def snakemake(workdir, *args, check=True, env=None):
    path = os.pathsep.join(p for p in (NO_SLURM_PROBE, str(Path(sys.executable).parent), os.environ["PATH"]) if p)
    env = {**os.environ, "PATH": path, **(env or {})}
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", "2", "--directory", str(workdir), "-s", str(workdir / "Snakefile"), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=workdir,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-6000:]}")
    return result


def planned_jobs(workdir) -> dict[str, int]:
    """Job counts per rule that `snakemake -n` would run ({} when nothing is to be done)."""
    out = snakemake(workdir, "-n", "--quiet", "rules")
    text = out.stdout + out.stderr
    counts = {}
    for line in text.splitlines():
        match = re.fullmatch(r"\s*([a-z_]+)\s+(\d+)\s*", line)
        if match and match.group(1) not in ("total", "job"):
            counts[match.group(1)] = int(match.group(2))
    return counts


def write_config(workdir, config):
    (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


def copy_workflow(workdir, config=TINY):
    shutil.copy(REPO / "Snakefile", workdir)
    for folder in ("rules", "report", "envs", "profiles"):
        shutil.copytree(REPO / folder, workdir / folder)
    shutil.copytree(REPO / "src" / "lltax", workdir / "src" / "lltax", ignore=shutil.ignore_patterns("__pycache__"))
    write_config(workdir, config)


def dry_run_resources(text: str) -> list[tuple[str, dict[str, str], dict[str, str]]]:
    """[(rule, wildcards, resources)] of every job a `snakemake -n` output lists."""
    jobs = []
    # A grouped job (the SLURM profile groups metric jobs) lists its member jobs indented.
    for block in re.split(r"\n(?=[ \t]*\[.*\]\n[ \t]*rule |[ \t]*rule )", text):
        rule = re.search(r"^[ \t]*(?:\[.*\]\n[ \t]*)?rule (\w+):", block, re.M)
        found = re.search(r"^\s+resources: (.*)$", block, re.M)
        if rule and found:
            wildcards = dict(re.findall(r"(\w+)=([^,\n]+)", (re.search(r"^\s+wildcards: (.*)$", block, re.M) or [None, ""])[1]))
            resources = dict(item.split("=", 1) for item in found.group(1).split(", "))
            jobs.append((rule.group(1), wildcards, resources))
    return jobs


@dataclass(frozen=True)
class Job:
    """One job of a dry run, as Snakemake lists it: its rule, files and `lltax` subcommand."""

    rule: str
    inputs: frozenset[str]
    outputs: frozenset[str]
    command: str | None


def all_jobs(workdir, *args) -> list[Job]:
    """Every job of the workflow (`snakemake -n -p --forceall`), with its files and command."""
    out = snakemake(workdir, "-n", "-p", "--forceall", *args)
    jobs = []
    for block in re.split(r"\n(?=[ \t]*(?:local)?rule \w+:)", out.stdout + out.stderr):
        rule = re.match(r"\s*(?:local)?rule (\w+):", block)
        if rule:
            files = dict(re.findall(r"^\s+(input|output): (.*)$", block, re.M))
            inputs, outputs = (frozenset(files.get(kind, "").split(", ")) - {""} for kind in ("input", "output"))
            command = re.search(r"^\s*(?:Shell command: )?lltax ([a-z-]+) ", block, re.M)
            jobs.append(Job(rule.group(1), inputs, outputs, command and command.group(1)))
    return jobs


def expected_job_counts(config: dict) -> dict[str, int]:
    """Jobs per rule of a whole run of `config` (validated, schema-filled), from its grid and switches."""
    from lltax.config.grid import compared_cells, expand_grid, seed_pairs, select_cells

    grid = expand_grid(config["grid"])
    cells, seeds = len(grid), config["seeds"]
    pairs = len(seed_pairs(seeds, config["curves"]["pairs"])) if config["curves"]["enabled"] else 0
    landscape = config["landscape"]["enabled"]
    landscapes = len(select_cells(grid, config["landscape"]["cells"])) if landscape and len(seeds) >= 2 else 0
    comparisons = len(compared_cells(grid, config["landscape"]["compare"])) if landscape and seeds else 0
    fge, basin = config["fge"]["enabled"], config["basin"]["enabled"]
    # cluster.seeds_per_job 1: a train job per seed and a curve_fit job per pair; else one per cell.
    one = config["cluster"]["seeds_per_job"] == 1
    counts = {
        "import_checkpoints": cells if config["checkpoints"]["path"] else 0,
        "train": 0 if config["checkpoints"]["path"] else cells * (len(seeds) if one else 1),
        "hessian": cells,
        "basin": cells * basin,
        "cka": cells,  # CKA and l2 distance
        "curve_fit": (cells * pairs if one else cells) if pairs else 0,
        "curve_eval": cells if pairs else 0,
        "fge": cells * fge,
        "landscape": landscapes,
        "landscape_figure": landscapes,
        "landscape_comparison": comparisons,
        "comparison_figure": comparisons,
        # a table per metric: train, hessian, cka, distance (+ curves, basin, ensembles)
        "aggregate": 4 + bool(pairs) + basin + fge,
        "merge": 1,
        "classify": 1,
        "plots": 1,
        "atlas": int(bool(landscapes)),
        "all": 1,
    }
    return {rule: count for rule, count in counts.items() if count}


def dependants(jobs: list[Job], chosen: list[Job]) -> list[Job]:
    """`chosen` and every job that reads, directly or not, an output of one of them."""
    found = list(dict.fromkeys(chosen))
    written = set().union(*(job.outputs for job in found)) if found else set()
    grew = True
    while grew:
        grew = False
        for job in jobs:
            if job not in found and job.inputs & written:
                found.append(job)
                written |= job.outputs
                grew = True
    return found


def rerun_counts(jobs: list[Job], chosen: list[Job]) -> dict[str, int]:
    """Jobs per rule that rerun when `chosen` do: them and their dependants (`all` among them)."""
    return dict(Counter(job.rule for job in dependants(jobs, chosen)))


def of_rule(jobs: list[Job], *rules: str) -> list[Job]:
    return [job for job in jobs if job.rule in rules]


def making(jobs: list[Job], path: str) -> list[Job]:
    """The job whose outputs include `path` (relative to the workflow folder)."""
    found = [job for job in jobs if path in job.outputs]
    assert len(found) == 1, (path, found)
    return found

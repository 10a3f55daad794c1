"""Time and memory of planning the workflow (`snakemake -n`) against the number of grid cells.

    python benchmarks/bench_dag.py [--cells 12 120 480 1200 2400] [--seeds 5]

Each size is a grid of widths x batch sizes (the rest one value each) with `seeds` seeds and
curves for every pair (as the paper's presets), planned in a scratch copy of the workflow; wall
time and peak memory come from /usr/bin/time. SLURM's client tools without a controller add a
fixed ~9 s per Snakemake start (the SLURM plugin's scontrol probe): an `scontrol` that fails at
once is put first on PATH so the figures are the workflow's own.
"""

from __future__ import annotations

import argparse
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def plan(cells: int, seeds: int, root: Path) -> tuple[float, float, int]:
    """(wall seconds, peak MB, jobs) of `snakemake -n` on a grid of `cells` cells."""
    work = root / f"cells{cells}"
    shutil.copytree(REPO, work, ignore=shutil.ignore_patterns(".git", ".venv", "results", "data", ".snakemake", "__pycache__", "tests"))
    widths = list(range(1, 13)) if cells >= 12 else list(range(1, cells + 1))
    batches = list(range(16, 16 + max(1, cells // len(widths))))
    config = {
        "experiment": "dag",
        "grid": {"width": widths, "batch_size": batches},
        "seeds": seeds,
        "curves": {"pairs": "all"},
    }
    (work / "config.yaml").write_text(yaml.safe_dump(config))
    stub = root / "bin"
    stub.mkdir(exist_ok=True)
    (stub / "scontrol").write_text("#!/bin/sh\nexit 1\n")
    (stub / "scontrol").chmod(0o755)
    env = {"PATH": f"{stub}:{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": str(root)}
    out = subprocess.run(
        ["/usr/bin/time", "-v", sys.executable, "-m", "snakemake", "-n", "--quiet", "rules", "--cores", "1"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    text = out.stdout + out.stderr
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", text).group(1)
    seconds = sum(float(part) * 60**i for i, part in enumerate(reversed(wall.split(":"))))
    peak = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", text).group(1)) / 1024
    jobs = int(re.search(r"total\s+(\d+)", text).group(1))
    return seconds, peak, jobs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, nargs="+", default=[12, 120, 480, 1200, 2400])
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, python {platform.python_version()}")
    print("| cells | jobs | wall (s) | peak memory (MB) |\n|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        for cells in args.cells:
            seconds, peak, jobs = plan(cells, args.seeds, Path(folder))
            print(f"| {cells} | {jobs} | {seconds:.1f} | {peak:.0f} |", flush=True)


if __name__ == "__main__":
    main()

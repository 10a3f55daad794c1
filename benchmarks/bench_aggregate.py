"""Seconds to aggregate and merge the per-job outputs of a paper-size grid.

Writes synthetic per-job JSON files of the contract (lltax.storage.atomic_files.write_json, the jobs' own
writer) for 14 widths x 13 batch sizes x 5 seeds into a temporary folder: train and
hessian per seed, cka and distance per cell over all 10 seed pairs, and the curve of the first
pair at 5 points t. Then times every ``aggregate_metric``, the merge and the netCDF write, and
the classification of the merged dataset. Goal: aggregation + merge + write under 30 s.

    python benchmarks/bench_aggregate.py [--widths 14] [--batch-sizes 13] [--seeds 5] [--repeats 3]
"""

from __future__ import annotations

import argparse
import itertools
import logging
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from lltax.config.grid import cell_path, expand_grid
from lltax.contract import METRICS
from lltax.phases.classify import classify
from lltax.results.netcdf import merge_metrics, write_dataset
from lltax.results.tables import aggregate_metric
from lltax.storage.atomic_files import write_json
from lltax.storage.checkpoint import save_checkpoint


def paper_size_config(num_widths: int, num_batch_sizes: int, num_seeds: int) -> dict:
    return {
        "grid": {
            "width": [int(round(2 ** (i / 2))) + i for i in range(num_widths)],
            "batch_size": [16 * 2**i for i in range(num_batch_sizes)],
            "label_noise": [0.0],
            "train_fraction": [1.0],
            "learning_rate": [0.1],
            "weight_decay": [0.0005],
        },
        "seeds": list(range(num_seeds)),
        "curves": {"pairs": "first", "points": [0.0, 0.25, 0.5, 0.75, 1.0]},
        "train": {"momentum": 0.9},  # the stability limit of the classification reads it
    }


def write_synthetic_results(root: Path, config: dict, seed: int = 0) -> int:
    """Contract files with random values; returns the number of files written."""
    rng = np.random.default_rng(seed)
    points = config["curves"]["points"]
    count = 0
    for cell in expand_grid(config["grid"]):
        folder = root / cell_path(cell)
        shas = {}
        for s in config["seeds"]:
            # A small real checkpoint per seed: the records are checked against it.
            torch.manual_seed(s)
            config_hash = f"{abs(hash((cell_path(cell), s))) % 16**16:016x}"
            save_checkpoint(folder / f"seed={s}" / "model.pt", torch.nn.Linear(2, 2), {"cell": cell, "seed": s, "config_hash": config_hash})
            shas[str(s)] = torch.load(folder / f"seed={s}" / "model.pt", weights_only=True)["meta"]["state_sha256"]
            acc = float(rng.uniform(50, 100))
            write_json(
                folder / f"seed={s}" / "train.json",
                {
                    "diverged": False,
                    "epochs_run": 100,
                    "wall_time_s": float(rng.uniform(10, 100)),
                    "seed": s,
                    "cell": cell,
                    "config_hash": config_hash,
                    "final": {"train_loss": 0.1, "train_acc": acc, "test_loss": 0.5, "test_acc": acc - 10},
                    "history": [{"epoch": e, "train_loss": 0.1, "train_acc": acc, "lr": 0.1, "seconds": 1.0} for e in range(100)],
                },
            )
            eigenvalue = float(10 ** rng.uniform(-1, 3))
            write_json(
                folder / f"seed={s}" / "hessian.json",
                {
                    "top_eigenvalue": eigenvalue,
                    "top_eigenvalues": [eigenvalue],
                    "eigenvalue_error": 1e-4 * eigenvalue,
                    "trace": 10 * eigenvalue,
                    "trace_error": 0.0,
                    "trace_method": "exact",
                    "backend": "native",
                    "hvp_count": 50,
                    "num_samples": 200,
                    "cell": cell,
                    "seed": s,
                    "checkpoint_sha256": shas[str(s)],
                },
            )
            count += 2
        pairs = list(itertools.combinations(config["seeds"], 2))
        write_json(
            folder / "cka.json",
            {
                "cell": cell,
                "checkpoints_sha256": shas,
                "pairs": [{"seed_a": a, "seed_b": b, "cka": float(rng.uniform())} for a, b in pairs],
            },
        )
        write_json(
            folder / "distance.json",
            {
                "cell": cell,
                "checkpoints_sha256": shas,
                "pairs": [{"seed_a": a, "seed_b": b, "l2_distance": float(rng.uniform(1, 50))} for a, b in pairs],
            },
        )
        a, b = config["seeds"][:2]
        errors = [float(v) for v in rng.uniform(0, 50, len(points))]
        write_json(
            folder / f"pair={a}-{b}" / "curve_eval.json",
            {
                "seed_a": a,
                "seed_b": b,
                "cell": cell,
                "checkpoints_sha256": {str(a): shas[str(a)], str(b): shas[str(b)]},
                "t": points,
                "train_error": errors,
                "train_loss": errors,
                "test_error": errors,
                "test_loss": errors,
                "mode_connectivity": float(rng.normal(0, 5)),
                "mode_connectivity_loss": float(rng.normal()),
            },
        )
        count += 3
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", type=int, default=14)
    parser.add_argument("--batch-sizes", type=int, default=13)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    config = paper_size_config(args.widths, args.batch_sizes, args.seeds)
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder) / "results" / "bench"
        began = time.perf_counter()
        files = write_synthetic_results(root, config)
        print(
            f"grid {args.widths} widths x {args.batch_sizes} batch sizes x {args.seeds} seeds: "
            f"{files} files written in {time.perf_counter() - began:.1f} s"
        )
        totals, per_metric = [], {m: [] for m in METRICS}
        for _ in range(args.repeats):
            began = time.perf_counter()
            tables = []
            for metric in METRICS:
                start = time.perf_counter()
                table = aggregate_metric(metric, root, config)
                write_dataset(table, root / "aggregate" / f"{metric}.nc")
                tables.append(table)
                per_metric[metric].append(time.perf_counter() - start)
            merged = merge_metrics(tables, config)
            write_dataset(merged, root / "dataset.nc")
            totals.append(time.perf_counter() - began)
        for metric, seconds in per_metric.items():
            print(f"  aggregate-metric {metric:9s} + write: median {statistics.median(seconds):.2f} s")
        print(
            f"all metrics + merge + write: median {statistics.median(totals):.2f} s over {args.repeats} repeats "
            f"(min {min(totals):.2f}, max {max(totals):.2f}); goal < 30 s"
        )
        began = time.perf_counter()
        phases = classify(merged)
        print(
            f"classify (per-cell criteria): {time.perf_counter() - began:.2f} s; "
            f"cells per phase {dict(zip(*np.unique(phases['phase'].values, return_counts=True)))}"
        )


if __name__ == "__main__":
    main()

"""Search for a default experiment whose map shows the paper's arrangement (issue 8).

Runs candidate configs (full config files, like config.yaml) through exactly the per-job
`lltax` commands the workflow runs (train, hessian, cka, curve-fit, curve-eval; same
arguments, one thread each), but inside a few long-lived worker processes instead of one
process per job, so a candidate costs its compute and not its start-ups. Then aggregates,
classifies with the candidate's `classify:` settings and scores the map against the paper's
arrangement (`score_map`). The per-job files are the workflow's own: the map of a candidate
is the map `snakemake --configfile CANDIDATE` gives (checked for the chosen default in
benchmarks/README.md).

    python benchmarks/demo_search.py benchmarks/demo_search/*.yaml --out results/search --workers 2

Prints, per candidate, the phase map, the confidence map, cell means and which of the
paper's properties hold; writes <out>/<name>/{dataset.nc,phases.nc,summary.json}.
Landscapes and l2 distances are not computed (they do not enter the phases).
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import math
import multiprocessing
import sys
import time
from pathlib import Path

import numpy as np

from lltax.config.grid import canonical_json, cell_path, expand_grid, seed_pairs
from lltax.config.schema import load_config

TEMPERATURE_AXES = ("batch_size", "learning_rate", "weight_decay")
LOAD_AXES = ("width", "label_noise", "train_fraction")


def _worker_init(log_dir: str) -> None:
    # The jobs' logs, one file per worker (the workflow writes one per job).
    sys.stderr = open(Path(log_dir) / f"worker-{multiprocessing.current_process().pid}.log", "a", buffering=1)


def _run(argv: list[str]) -> tuple[int, float]:
    from lltax.cli import main

    start = time.perf_counter()
    return main(argv), time.perf_counter() - start


def candidate_jobs(config: dict, results: Path) -> dict[str, tuple[list[str], list[str]]]:
    """{job id: (lltax argv, ids of the jobs it needs)}, the workflow's jobs and arguments."""
    jobs: dict[str, tuple[list[str], list[str]]] = {}
    common = ["--data-dir", config["data_dir"], "--device", "cpu", "--threads", "1"]
    curve_settings = canonical_json({k: v for k, v in config["curves"].items() if k not in ("enabled", "pairs", "points")})
    pairs = seed_pairs(config["seeds"], config["curves"]["pairs"]) if config["curves"]["enabled"] else []
    for cell in expand_grid(config["grid"]):
        path = cell_path(cell)
        folder = results / path
        model = {seed: str(folder / f"seed={seed}" / "model.pt") for seed in config["seeds"]}
        for seed in config["seeds"]:
            jobs[f"train {path} {seed}"] = (
                [
                    "train",
                    "--cell",
                    path,
                    "--seeds",
                    str(seed),
                    "--dataset-settings",
                    canonical_json(config["dataset"]),
                    "--model",
                    config["model"]["name"],
                    "--settings",
                    canonical_json(config["train"]),
                    "--out-dir",
                    str(folder / f"seed={seed}"),
                    *common,
                ],
                [],
            )
            jobs[f"hessian {path} {seed}"] = (
                [
                    "hessian",
                    "--checkpoints",
                    model[seed],
                    "--settings",
                    canonical_json(config["hessian"]),
                    "--out",
                    str(folder / f"seed={seed}" / "hessian.json"),
                    *common,
                ],
                [f"train {path} {seed}"],
            )
        trains = [f"train {path} {seed}" for seed in config["seeds"]]
        jobs[f"cka {path}"] = (
            [
                "cka",
                "--checkpoints",
                *model.values(),
                "--settings",
                canonical_json(config["cka"]),
                "--out",
                str(folder / "cka.json"),
                "--distance-out",
                str(folder / "distance.json"),
                *common,
            ],
            trains,
        )
        for a, b in pairs:
            curve = str(folder / f"pair={a}-{b}" / "curve.pt")
            jobs[f"curve-fit {path} {a}-{b}"] = (
                ["curve-fit", "--checkpoints", model[a], model[b], "--settings", curve_settings, "--out", curve, *common],
                [f"train {path} {a}", f"train {path} {b}"],
            )
            jobs[f"curve-eval {path} {a}-{b}"] = (
                [
                    "curve-eval",
                    "--curves",
                    curve,
                    "--settings",
                    canonical_json({"points": config["curves"]["points"]}),
                    "--out",
                    str(folder / f"pair={a}-{b}" / "curve_eval.json"),
                    *common,
                ],
                [f"curve-fit {path} {a}-{b}"],
            )
    return jobs


def outputs_of(argv: list[str]) -> list[str]:
    """The files a job writes (train: model.pt and train.json per --out-dir; others: --out...)."""
    outputs, current = [], None
    for arg in argv:
        if arg.startswith("--"):
            current = arg
        elif current == "--out-dir":
            outputs += [str(Path(arg) / "model.pt"), str(Path(arg) / "train.json")]
        elif current in ("--out", "--distance-out"):
            outputs.append(arg)
    return outputs


def run_jobs(jobs: dict[str, tuple[list[str], list[str]]], workers: int, log_dir: Path) -> dict[str, float]:
    """Run every job once its inputs exist; a job whose outputs are all there is skipped (its
    results are deterministic: the same config and seed give the same bytes)."""
    done = {job for job, (argv, _) in jobs.items() if all(Path(p).exists() for p in outputs_of(argv))}
    seconds: dict[str, float] = {}
    pending = {job: spec for job, spec in jobs.items() if job not in done}
    print(f"{len(done)} of {len(jobs)} jobs already done, {len(pending)} to run", flush=True)
    context = multiprocessing.get_context("spawn")
    with cf.ProcessPoolExecutor(workers, mp_context=context, initializer=_worker_init, initargs=(str(log_dir),)) as pool:
        running: dict[cf.Future, str] = {}
        while pending or running:
            for job_id in [j for j, (_, needs) in pending.items() if all(n in done for n in needs)]:
                running[pool.submit(_run, pending.pop(job_id)[0])] = job_id
            finished, _ = cf.wait(running, return_when=cf.FIRST_COMPLETED)
            for future in finished:
                job_id = running.pop(future)
                code, elapsed = future.result()
                if code != 0:
                    raise RuntimeError(f"job {job_id} failed (exit {code}); see the worker logs in {log_dir}")
                done.add(job_id)
                seconds[job_id] = elapsed
    return seconds


def _hotter(phases, axis: str, hot: str, cold: str) -> bool | None:
    """Whether cells of phase `hot` sit at higher temperature than cells of phase `cold` (means
    of the axis position; small batch = hot, large lr = hot). None if either is absent."""
    labels = phases["phase"]
    values = np.asarray(phases[axis].values, dtype=float)
    position = np.log(values) if axis == "batch_size" else -np.log(values) if axis in ("learning_rate",) else -values
    grid = labels.transpose("width", axis, ...).values.reshape(labels.sizes["width"], labels.sizes[axis], -1)
    hot_pos = [position[j] for i in range(grid.shape[0]) for j in range(grid.shape[1]) if hot in grid[i, j]]
    cold_pos = [position[j] for i in range(grid.shape[0]) for j in range(grid.shape[1]) if cold in grid[i, j]]
    if not hot_pos or not cold_pos:
        return None
    return float(np.mean(hot_pos)) < float(np.mean(cold_pos))


def score_map(phases, config: dict) -> dict[str, bool | None]:
    """The issue's properties of the paper's arrangement (Yang et al. 2021, Figure 2 / DESIGN's
    phase table) for a width x temperature map."""
    temperature = next((a for a in TEMPERATURE_AXES if phases.sizes[a] > 1), "batch_size")
    labels = phases["phase"].squeeze().transpose("width", temperature).values
    widths = np.asarray(phases["width"].values, dtype=float)
    present = set(labels.ravel().tolist())
    test_acc = phases["test_acc_mean"].squeeze().transpose("width", temperature).values
    best = np.unravel_index(np.nanargmax(test_acc), test_acc.shape)
    mc = phases["mode_connectivity_mean"].squeeze().transpose("width", temperature).values
    mc_by_width = np.nanmean(mc, axis=1)

    def mean_width(phase):
        rows = [widths[i] for i in range(labels.shape[0]) for j in range(labels.shape[1]) if labels[i, j] == phase]
        return float(np.mean(rows)) if rows else math.nan

    curves = len(seed_pairs(config["seeds"], config["curves"]["pairs"]))
    return {
        "all five phases": {"I", "II", "III", "IV-A", "IV-B"} <= present,
        "best test accuracy in IV-B": labels[best] == "IV-B",
        "I at smaller width than IV-B": bool(mean_width("I") < mean_width("IV-B")) if "I" in present and "IV-B" in present else None,
        "mc rises to 0 with width": bool(
            np.all(np.diff(mc_by_width) > 0) and mc_by_width[-1] > -config["classify"]["connectivity_threshold"] * 2
        ),
        "II hotter than IV-A": _hotter(phases, temperature, "II", "IV-A"),
        "II hotter than III": _hotter(phases, temperature, "II", "III"),
        ">= 3 seeds and >= 2 curves per cell": len(config["seeds"]) >= 3 and curves >= 2,
    }


def score_trend(phases, load: str, temperature: str) -> dict[str, bool]:
    """The paper's Figure 7 trend along a data-quality load axis (label noise): mode
    connectivity more negative and CKA lower with more noise, at every temperature."""
    mc = phases["mode_connectivity_mean"].squeeze().transpose(load, temperature).values
    cka = phases["cka_mean"].squeeze().transpose(load, temperature).values
    return {
        f"mc falls with {load} at every {temperature}": bool(np.all(np.diff(mc, axis=0) < 0)),
        f"mc falls with {load} (mean over {temperature})": bool(np.all(np.diff(np.nanmean(mc, axis=1)) < 0)),
        f"CKA falls with {load} at every {temperature}": bool(np.all(np.diff(cka, axis=0) < 0)),
        f"CKA falls with {load} (mean over {temperature})": bool(np.all(np.diff(np.nanmean(cka, axis=1)) < 0)),
    }


def report(name: str, config: dict, results: Path, seconds: dict[str, float]) -> dict:
    from lltax.phases.classify import classify, phase_table
    from lltax.results.infer import aggregate_all
    from lltax.results.netcdf import write_dataset

    dataset = aggregate_all(results, config)
    phases = classify(dataset, **config["classify"])
    write_dataset(dataset, results / "dataset.nc")
    write_dataset(phases, results / "phases.nc")
    temperature = next((a for a in TEMPERATURE_AXES if phases.sizes[a] > 1), "batch_size")
    load = next((a for a in LOAD_AXES if phases.sizes[a] > 1), "width")
    lines = [f"== {name}: {len(seconds)} jobs, {sum(seconds.values()):.0f} job-seconds in workers"]
    lines.append(phase_table(phases, load, temperature))
    lines.append(phase_table(phases, load, temperature, "phase_confidence"))
    for variable in (
        "test_acc_mean",
        "train_acc_mean",
        "hessian_top_eigenvalue_mean",
        "sharpness_threshold",
        "mode_connectivity_mean",
        "cka_mean",
    ):
        lines.append(f"{variable}:")
        lines.append(phase_table(phases, load, temperature, variable))
    score = score_map(phases, config) if load == "width" else score_trend(phases, load, temperature)
    lines += [f"  [{'x' if ok else ' ' if ok is not None else '-'}] {what}" for what, ok in score.items()]
    text = "\n".join(lines)
    print(text, flush=True)
    summary = {
        "name": name,
        "score": score,
        "held": sum(bool(v) for v in score.values()),
        "job_seconds": sum(seconds.values()),
        "per_command": {c: round(sum(s for j, s in seconds.items() if j.split()[0] == c), 1) for c in {j.split()[0] for j in seconds}},
    }
    (results / "summary.json").write_text(json.dumps(summary, indent=1))
    (results / "map.txt").write_text(text + "\n")
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("candidates", nargs="+", help="candidate config files")
    parser.add_argument("--out", default="results/search", help="one folder per candidate under it")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    configs = {}
    jobs: dict[str, tuple[list[str], list[str]]] = {}
    for path in args.candidates:
        name = Path(path).stem
        config = load_config(path)
        results = Path(args.out) / name
        results.mkdir(parents=True, exist_ok=True)
        configs[name] = (config, results)
        jobs.update({f"{name} {j}": (argv, [f"{name} {n}" for n in needs]) for j, (argv, needs) in candidate_jobs(config, results).items()})
    start = time.perf_counter()
    log_dir = Path(args.out) / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    seconds = run_jobs(jobs, args.workers, log_dir)
    print(f"{len(jobs)} jobs in {time.perf_counter() - start:.0f} s wall with {args.workers} workers", flush=True)
    for name, (config, results) in configs.items():
        report(name, config, results, {j[len(name) + 1 :]: s for j, s in seconds.items() if j.startswith(name + " ")})


if __name__ == "__main__":
    main()

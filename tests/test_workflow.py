"""The Snakemake workflow end to end on a tiny config, then incremental reruns from `snakemake -n`.

The workflow files are copied into a temporary folder so the rerun tests can edit a metric's
source file (its mtime) without touching the repository.
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import xarray as xr
import yaml

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow

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


def copy_workflow(workdir):
    shutil.copy(REPO / "Snakefile", workdir)
    for folder in ("rules", "report", "envs", "profiles"):
        shutil.copytree(REPO / folder, workdir / folder)
    shutil.copytree(REPO / "src" / "lltax", workdir / "src" / "lltax", ignore=shutil.ignore_patterns("__pycache__"))
    write_config(workdir, TINY)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("workflow")
    copy_workflow(workdir)
    # Every job's log lists the modules it imported (Python's -X importtime): the ground truth
    # the derived source inputs are checked against.
    snakemake(workdir, env={"PYTHONPROFILEIMPORTTIME": "1"})
    return workdir


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


def test_slurm_profile_plans_per_job_resources(tmp_path):
    """Through the SLURM profile every torch job asks for one GPU with device: cuda and none
    otherwise, and its runtime follows its own cost: the smaller batch (more steps) and the
    wider model ask for more time (a dry run; tests/test_slurm_cluster.py submits for real)."""
    copy_workflow(tmp_path)
    config = {**TINY, "device": "cuda", "train": {"epochs": 300}, "grid": {**TINY["grid"], "train_fraction": [1.0]}}
    write_config(tmp_path, config)
    out = snakemake(tmp_path, "--profile", "profiles/slurm", "-n")
    text = out.stdout + out.stderr
    assert re.search(r"total\s+43\b", text), text[-2000:]  # 4 cells x 8 per-cell jobs (landscape_figure) + 6 tables + 5
    jobs = dry_run_resources(text)
    torch_rules = {"train", "hessian", "basin", "cka", "curve_fit", "curve_eval", "landscape"}
    assert {rule for rule, _, _ in jobs} >= torch_rules | {"merge"}
    for rule, _, resources in jobs:
        assert resources.get("gpu", "0") == ("1" if rule in torch_rules else "0"), (rule, resources)
    train = {(w["cell"].split("/")[0], w["cell"].split("/")[1]): int(r["runtime"]) for rule, w, r in jobs if rule == "train"}
    assert train[("width=2", "batch_size=32")] > train[("width=2", "batch_size=64")], train
    assert train[("width=4", "batch_size=32")] >= train[("width=2", "batch_size=32")], train

    write_config(tmp_path, {**config, "device": "cpu"})
    out = snakemake(tmp_path, "--profile", "profiles/slurm", "-n")
    jobs = dry_run_resources(out.stdout + out.stderr)
    assert len(jobs) == 43 and all(resources.get("gpu", "0") == "0" for _, _, resources in jobs)


def test_every_job_gets_its_threads(tmp_path):
    """Rules declare `threads:` and pass them on: torch jobs get config `threads`, the rest 1."""
    copy_workflow(tmp_path)
    write_config(tmp_path, {**TINY, "threads": 2})
    out = snakemake(tmp_path, "-n", "-p")
    lines = (out.stdout + out.stderr).splitlines()
    commands = [line.split("Shell command: ", 1)[1] for line in lines if "Shell command: lltax " in line]
    assert len(commands) == 43 - 1, commands[:3]  # every job but `all`
    for command in commands:
        subcommand = command.split()[1]
        expected = "1" if subcommand in ("aggregate-metric", "merge", "classify", "plot", "atlas", "landscape-figure") else "2"
        assert f" --threads {expected} " in command, command


def test_landscape_compare_plans_one_job_per_pair_of_cells(tmp_path):
    """landscape.compare [{batch_size: 32}, {batch_size: 64}] pairs every width's two cells:
    one job each, reading seed 0 of both cells, writing under cell A; a comparison across widths
    is refused before any job."""
    copy_workflow(tmp_path)
    landscape = {**TINY["landscape"], "compare": [[{"batch_size": 32}, {"batch_size": 64}]]}
    write_config(tmp_path, {**TINY, "landscape": landscape})
    out = snakemake(tmp_path, "-n", "-p")
    text = out.stdout + out.stderr
    commands = [line.split("Shell command: ", 1)[1] for line in text.splitlines() if "--across-cells" in line]
    # + a figure job per landscape (4) and per comparison (2)
    assert len(commands) == 2 and re.search(r"total\s+47\b", text), text[-1500:]
    drawings = [line.split("Shell command: ", 1)[1] for line in text.splitlines() if "Shell command: lltax landscape-figure" in line]
    assert len([c for c in drawings if "/comparison.nc" in c]) == 2 and len(drawings) == 6
    # The computation reads no drawing setting; the drawing reads only those.
    assert all("color_limits" not in c and "--figure" not in c for c in commands)
    assert all('{"color_limits":null,"levels":null}' in c for c in drawings), drawings[:1]
    for width in (2, 4):
        a, b = (
            f"width={width}/batch_size={size}/label_noise=0.0/train_fraction=0.1/learning_rate=0.05/weight_decay=0.0005"
            for size in (32, 64)
        )
        command = next(c for c in commands if f"results/tiny/{a}/vs_batch_size=64/comparison.nc" in c)
        assert f"results/tiny/{a}/seed=0/model.pt" in command and f"results/tiny/{b}/seed=0/model.pt" in command
        assert '"directions":"seeds"' in command and '"spectrum_steps":0' in command
    landscape["compare"] = [[{"width": 2}, {"width": 4}]]
    write_config(tmp_path, {**TINY, "landscape": landscape})
    out = snakemake(tmp_path, "-n", check=False)
    assert out.returncode != 0 and "may differ only in ['batch_size', 'learning_rate', 'weight_decay']" in out.stdout + out.stderr


def test_landscape_on_the_curve_plane_waits_for_the_curve(tmp_path):
    """directions: curve: each cell's landscape job reads the curve of its first seed pair."""
    copy_workflow(tmp_path)
    write_config(tmp_path, {**TINY, "landscape": {**TINY["landscape"], "directions": "curve"}})
    out = snakemake(tmp_path, "-n", "-p")
    commands = [
        line.split("Shell command: ", 1)[1] for line in (out.stdout + out.stderr).splitlines() if "Shell command: lltax landscape " in line
    ]
    assert len(commands) == 4
    for command in commands:
        cell = command.split("--out ", 1)[1].split("/landscape.nc")[0].strip("'")
        assert f"--curves {cell}/pair=0-1/curve.pt" in command.replace("'", ""), command


def test_shell_metacharacters_in_paths_are_data_not_commands(tmp_path):
    """Every rule's shell line, on one cell: folders with spaces, quotes, $(...), backticks, ;,
    & and | run as plain folder names (every parameter is quoted), and nothing is injected."""
    copy_workflow(tmp_path)
    marker = tmp_path / "INJECTED"
    results_dir = f"r $(touch {marker}); `touch {marker}` 'q' \"d\" & | x"
    data_dir = f"d $(touch {marker}) ;x"
    grid = {**TINY["grid"], "width": [2], "batch_size": [32]}
    write_config(tmp_path, {**TINY, "results_dir": results_dir, "data_dir": data_dir, "grid": grid})
    snakemake(tmp_path)
    assert not marker.exists()
    results = tmp_path / results_dir / "tiny"
    assert len(list(results.rglob("model.pt"))) == 2 and (results / "phases.nc").stat().st_size > 0
    assert (results / "figures" / "phases.png").exists() and len(list(results.rglob("landscape.png"))) == 1
    assert list((tmp_path / data_dir / "mnist1d").glob("*.npz"))  # the data went where data_dir says


def test_device_cuda_on_a_machine_without_a_gpu_stops_before_any_job(tmp_path):
    """Jobs that run here would all fail; a dry run (or a cluster profile) plans it as before."""
    copy_workflow(tmp_path)
    write_config(tmp_path, {**TINY, "device": "cuda"})
    out = snakemake(tmp_path, "--until", "train", check=False, env={"LLTAX_GPUS": "0"})
    assert out.returncode != 0 and "config key 'device': cuda, but this machine has no GPU" in out.stdout + out.stderr
    assert not list(tmp_path.rglob("model.pt"))
    assert snakemake(tmp_path, "-n", env={"LLTAX_GPUS": "0"}).returncode == 0


def test_two_runs_on_one_results_folder_are_refused(tmp_path):
    """Snakemake's lock is per working directory; lltax's results-folder lock is not."""
    from lltax.io import hold_results_lock

    copy_workflow(tmp_path)
    shared = tmp_path / "shared_results"
    write_config(tmp_path, {**TINY, "results_dir": str(shared)})
    held = hold_results_lock(shared / "tiny")  # as a run started from another working directory would
    try:
        out = snakemake(tmp_path, "--until", "train", check=False)
        assert out.returncode != 0
        assert "is in use by another workflow run" in out.stdout + out.stderr
        assert "a run started now is refused" in out.stdout + out.stderr  # said before Snakemake's own checks
        assert not list((shared / "tiny").rglob("model.pt"))
    finally:
        held.close()


def test_a_configfile_stands_on_its_own(tmp_path):
    """--configfile replaces the default config: left-out keys take the schema's defaults."""
    copy_workflow(tmp_path)  # the workflow's config.yaml (here TINY: curves.epochs 1) is the default experiment
    partial = tmp_path / "mine.yaml"
    partial.write_text(yaml.safe_dump({"experiment": "mine", "grid": {"width": [2], "batch_size": [32]}}))
    out = snakemake(tmp_path, "-n", "-p", "--configfile", str(partial))
    text = out.stdout + out.stderr
    fits = [line for line in text.splitlines() if "Shell command: lltax curve-fit" in line]
    assert fits and all('"epochs":50' in line for line in fits), fits[:1]  # schema default, not TINY's 1
    assert "results/mine/" in text and "results/tiny/" not in text


def test_end_to_end_outputs(finished_run):
    results = finished_run / "results" / "tiny"
    dataset = xr.open_dataset(results / "dataset.nc", engine="netcdf4")
    assert dict(dataset.sizes)["width"] == 2 and dict(dataset.sizes)["seed"] == 2
    assert dict(dataset.sizes)["label_noise"] == 1  # size-1 axes kept
    assert dataset["test_acc"].notnull().all()
    assert dataset["hessian_top_eigenvalue"].notnull().all()
    assert dataset["cka"].notnull().all()
    phases = xr.open_dataset(results / "phases.nc", engine="netcdf4")
    assert phases["phase"].size == 4
    for name in ("panels", "phases", "lines", "curves"):
        assert (results / "figures" / f"{name}.png").stat().st_size > 0
    assert len(list(results.glob("width=*/*/*/*/*/*/landscape.png"))) == 4
    assert (results / "logs" / "train").exists()
    train_log = next((results / "logs" / "train").rglob("weight_decay=*.log")).read_text()
    assert train_log.count("epoch 1/1") == 2  # one job per cell trains both seeds


def test_report_bundles_the_figures(finished_run):
    snakemake(finished_run, "--report", "report.html")
    report = (finished_run / "report.html").read_text(errors="replace")
    assert "panels.png" in report and "landscape.png" in report


def test_unchanged_run_has_nothing_to_do(finished_run):
    assert planned_jobs(finished_run) == {}


def test_hessian_settings_change_reruns_only_hessian_and_dependants(finished_run):
    write_config(finished_run, {**TINY, "hessian": {**TINY["hessian"], "num_samples": 16}})
    try:
        assert planned_jobs(finished_run) == {"hessian": 4, "aggregate": 1, "merge": 1, "classify": 1, "plots": 1, "atlas": 1, "all": 1}
    finally:
        write_config(finished_run, TINY)


def test_cka_settings_change_reruns_only_cka_and_dependants(finished_run):
    write_config(finished_run, {**TINY, "cka": {**TINY["cka"], "num_samples": 32}})
    try:
        # The CKA job writes the distances too: both tables are rebuilt (distances unchanged).
        assert planned_jobs(finished_run) == {"cka": 4, "aggregate": 2, "merge": 1, "classify": 1, "plots": 1, "atlas": 1, "all": 1}
    finally:
        write_config(finished_run, TINY)


def test_curve_points_change_reevaluates_without_refitting(finished_run):
    write_config(finished_run, {**TINY, "curves": {**TINY["curves"], "points": [0, 0.5, 1]}})
    try:
        assert planned_jobs(finished_run) == {"curve_eval": 4, "aggregate": 1, "merge": 1, "classify": 1, "plots": 1, "atlas": 1, "all": 1}
    finally:
        write_config(finished_run, TINY)


def test_plot_settings_change_reruns_only_figures(finished_run):
    write_config(finished_run, {**TINY, "plots": {"dpi": 80}})
    try:
        assert planned_jobs(finished_run) == {"plots": 1, "all": 1}
    finally:
        write_config(finished_run, TINY)


def test_editing_metric_source_reruns_that_metric(finished_run):
    # Snakemake compares the checksum of small inputs, so a mere touch is not an edit.
    source = finished_run / "src" / "lltax" / "metrics" / "hessian.py"
    original = source.read_text()
    time.sleep(0.01)
    source.write_text(original + "\n# an edit\n")
    try:
        assert planned_jobs(finished_run) == {"hessian": 4, "aggregate": 1, "merge": 1, "classify": 1, "plots": 1, "atlas": 1, "all": 1}
    finally:
        source.write_text(original)
    assert planned_jobs(finished_run) == {}  # the edit undone: nothing to do again


# Which rules a rule's outputs feed (the DAG of rules/), for the expected reruns of an edit.
DEPENDANTS = {
    "train": {
        "hessian",
        "basin",
        "cka",
        "curve_fit",
        "curve_eval",
        "landscape",
        "landscape_figure",
        "aggregate",
        "merge",
        "classify",
        "plots",
        "atlas",
    },
    "hessian": {"aggregate", "merge", "classify", "plots", "atlas"},
    "basin": {"aggregate", "merge", "classify", "plots", "atlas"},
    "cka": {"aggregate", "merge", "classify", "plots", "atlas"},
    "curve_fit": {"curve_eval", "aggregate", "merge", "classify", "plots", "atlas"},
    "curve_eval": {"aggregate", "merge", "classify", "plots", "atlas"},
    "landscape": {"landscape_figure", "atlas"},
    "landscape_figure": set(),
    "aggregate": {"merge", "classify", "plots", "atlas"},
    "merge": {"classify", "plots", "atlas"},
    "classify": {"plots", "atlas"},
    "plots": set(),
    "atlas": set(),
}
RULE_COMMANDS = {
    "train": "train",
    "hessian": "hessian",
    "basin": "basin",
    "cka": "cka",
    "curve_fit": "curve-fit",
    "curve_eval": "curve-eval",
    "landscape": "landscape",
    "landscape_figure": "landscape-figure",
    "aggregate": "aggregate-metric",
    "merge": "merge",
    "classify": "classify",
    "plots": "plot",
    "atlas": "atlas",
}


def imported_at_run_time(workdir) -> dict[str, set[str]]:
    """{rule: lltax source files (relative to the package) its jobs imported}, from the -X importtime logs."""
    from lltax.sources import module_file

    package = workdir / "src" / "lltax"
    logs = workdir / "results" / "tiny" / "logs"
    found: dict[str, set[str]] = {}
    for log in logs.rglob("*.log"):
        relative = log.relative_to(logs)
        rule = relative.parts[0] if len(relative.parts) > 1 else relative.stem
        for name in re.findall(r"^import time:\s+\d+ \|\s+\d+ \|\s+(lltax[\w.]*)\s*$", log.read_text(), re.M):
            path = module_file(name.strip(), package)
            found.setdefault(rule, set()).add(path.relative_to(package).as_posix())
    return found


def test_derived_sources_cover_every_module_a_job_imports(finished_run):
    """Each rule's declared code inputs include every lltax module its jobs really imported."""
    from lltax.sources import relative_sources

    package = finished_run / "src" / "lltax"
    imported = imported_at_run_time(finished_run)
    assert set(imported) == set(RULE_COMMANDS), sorted(imported)
    for rule, command in RULE_COMMANDS.items():
        declared = set(relative_sources(command, package))
        assert imported[rule] <= declared, (rule, sorted(imported[rule] - declared))
        assert "cli.py" in imported[rule] and "__init__.py" in imported[rule]


def test_editing_any_source_module_reruns_exactly_the_rules_that_import_it(finished_run):
    """Edit every module of the package in turn: `snakemake -n` plans the rules whose jobs import
    it and their dependants, nothing else (a module no job imports reruns nothing)."""
    from lltax.sources import relative_sources

    package = finished_run / "src" / "lltax"
    declared = {rule: set(relative_sources(command, package)) for rule, command in RULE_COMMANDS.items()}
    planned_by_module = {}
    for source in sorted(package.rglob("*.py")):
        module = source.relative_to(package).as_posix()
        importers = {rule for rule, files in declared.items() if module in files}
        expected = set().union(*[{rule} | DEPENDANTS[rule] for rule in importers]) | ({"all"} if importers else set())
        original = source.read_text()
        source.write_text(original + "\n# an edit\n")
        try:
            planned = set(planned_jobs(finished_run))
        finally:
            source.write_text(original)
        assert planned == expected, (module, sorted(planned), sorted(expected))
        planned_by_module[module] = planned
    # The cases that once went wrong: the landscape's BatchNorm recompute lives in bezier.py;
    # CKA's input perturbation must not retrain; every job reads config, io and cli.
    assert "landscape" in planned_by_module["metrics/bezier.py"]
    assert "cka" in planned_by_module["metrics/mixup.py"] and "train" not in planned_by_module["metrics/mixup.py"]
    for module in ("config.py", "io.py", "cli.py", "contract.py"):
        assert "train" in planned_by_module[module], module
    assert planned_by_module["cost.py"] == set()  # resource estimates change no result
    # The landscape's drawing is a job of its own: editing it recomputes no landscape (issue 30.12).
    assert planned_by_module["figures/landscape.py"] == {"landscape_figure", "atlas", "all"}
    assert planned_jobs(finished_run) == {}


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        # Results depend on the thread count: every torch job reruns (and the dataset says 2).
        (
            {"threads": 2},
            {
                "train": 4,
                "hessian": 4,
                "basin": 4,
                "cka": 4,
                "curve_fit": 4,
                "curve_eval": 4,
                "landscape": 4,
                "landscape_figure": 4,
                "aggregate": 6,
                "merge": 1,
                "classify": 1,
                "plots": 1,
                "atlas": 1,
                "all": 1,
            },
        ),
        ({"device": "auto"}, {}),  # no GPU here: auto is the CPU, the same jobs
        ({"data_dir": "./data/"}, {}),  # the same folder spelled differently
        ({"cluster": {"tflops": 5.0, "safety": 4}}, {}),  # resource estimates only
        ({"evaluate": {"batch_size": 100}}, {}),  # the by-hand `lltax evaluate` section
        ({"max_cells": 6000}, {}),  # how large a grid may be planned
        # A colour setting redraws the landscape pictures and the atlas, and recomputes nothing (issue 30.12).
        ({"landscape": {**TINY["landscape"], "color_limits": [0.01, 10.0]}}, {"landscape_figure": 4, "atlas": 1, "all": 1}),
    ],
    ids=["threads", "device-spelling", "data-dir-spelling", "cluster", "evaluate", "max-cells", "landscape-colors"],
)
def test_params_are_what_results_depend_on(finished_run, change, expected):
    from lltax.gpu import count_gpus

    if "device" in change and count_gpus() > 0:
        pytest.skip("this machine has a GPU: device auto is CUDA here, another device than TINY's cpu")
    write_config(finished_run, {**TINY, **change})
    try:
        assert planned_jobs(finished_run) == expected
    finally:
        write_config(finished_run, TINY)


FIRST_CELL = "width=2/batch_size=32/label_noise=0.0/train_fraction=0.1/learning_rate=0.05/weight_decay=0.0005"


@pytest.mark.parametrize(
    ("relative", "expected"),
    [
        # a record refused by the aggregate step, deleted: its cell's job makes it again
        ("seed=0/hessian.json", {"hessian": 1, "aggregate": 1, "merge": 1, "classify": 1, "plots": 1, "atlas": 1, "all": 1}),
        ("cka.json", {"cka": 1, "aggregate": 2, "merge": 1, "classify": 1, "plots": 1, "atlas": 1, "all": 1}),
        (
            "pair=0-1/curve.pt",
            {"curve_fit": 1, "curve_eval": 1, "aggregate": 1, "merge": 1, "classify": 1, "plots": 1, "atlas": 1, "all": 1},
        ),
        # a deleted checkpoint retrains its cell, and every metric of that cell follows
        (
            "seed=0/model.pt",
            {"train": 1, "hessian": 1, "basin": 1, "cka": 1, "curve_fit": 1, "curve_eval": 1, "landscape": 1, "aggregate": 6}
            | {"landscape_figure": 1, "merge": 1, "classify": 1, "plots": 1, "atlas": 1, "all": 1},
        ),
        # a deleted landscape picture is drawn again, from landscape.nc (issue 30.13)
        ("landscape.png", {"landscape_figure": 1, "all": 1}),
    ],
    ids=["hessian-record", "cka-record", "curve", "checkpoint", "landscape-picture"],
)
def test_a_deleted_per_job_file_is_made_again_by_a_plain_rerun(finished_run, relative, expected):
    """The recovery rows of docs/running.md (When something goes wrong): delete the file, run `snakemake` as before."""
    path = finished_run / "results" / "tiny" / FIRST_CELL / relative
    kept = path.with_name(path.name + ".kept")
    shutil.copy2(path, kept)
    path.unlink()
    try:
        assert planned_jobs(finished_run) == expected
    finally:
        shutil.copy2(kept, path)  # same bytes and time: the finished run is whole again
        kept.unlink()
    assert planned_jobs(finished_run) == {}


def test_a_link_out_of_the_results_folder_is_refused_before_any_job(tmp_path):
    copy_workflow(tmp_path)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    cell = tmp_path / "results" / "tiny" / FIRST_CELL
    cell.parent.mkdir(parents=True)
    cell.symlink_to(outside, target_is_directory=True)
    out = snakemake(tmp_path, "--until", "train", check=False)
    assert out.returncode != 0 and "is a link to" in out.stdout + out.stderr and "outside" in out.stdout + out.stderr
    assert not list(outside.iterdir())  # nothing written through the link


def test_a_config_of_aliases_of_aliases_is_refused_at_once(tmp_path):
    """YAML aliases nested ten deep name ~3.5e9 values; the checks stop at 1e6 instead of walking them."""
    copy_workflow(tmp_path)
    text = "experiment: tiny\ngrid:\n  width: [2]\n  batch_size: [32]\nx0: &a0 [0, 1, 2, 3, 4, 5, 6, 7, 8]\n"
    text += "".join(f"x{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]\n" for i in range(1, 10))
    (tmp_path / "bomb.yaml").write_text(text)
    started = time.perf_counter()
    out = snakemake(tmp_path, "-n", "--configfile", str(tmp_path / "bomb.yaml"), check=False)
    assert out.returncode != 0 and "expands to more than 1,000,000 values" in out.stdout + out.stderr
    assert time.perf_counter() - started < 120


def test_bad_config_fails_before_any_job(finished_run, tmp_path):
    write_config(finished_run, {**TINY, "grid": {**TINY["grid"], "width": [0]}})
    try:
        result = snakemake(finished_run, "-n", check=False)
        assert result.returncode != 0
        assert "grid.width" in result.stdout + result.stderr
    finally:
        write_config(finished_run, TINY)


PRESETS = sorted((REPO / "configs").glob("*.yaml"))


@pytest.mark.parametrize("preset", PRESETS, ids=[path.stem for path in PRESETS])
def test_every_preset_plans_its_whole_grid(preset, tmp_path):
    """Each preset in configs/ validates and dry-runs; its job count follows from its grid."""
    from lltax.config import validate_config
    from lltax.grid import compared_cells, expand_grid, seed_pairs, select_cells

    config = validate_config(yaml.safe_load(preset.read_text()))
    cells, seeds = len(expand_grid(config["grid"])), config["seeds"]
    pairs = len(seed_pairs(seeds, config["curves"]["pairs"])) if config["curves"]["enabled"] else 0
    pictured = len(select_cells(expand_grid(config["grid"]), config["landscape"]["cells"]))
    landscapes = pictured if config["landscape"]["enabled"] and len(seeds) >= 2 else 0
    comparisons = len(compared_cells(expand_grid(config["grid"]), config["landscape"]["compare"])) if config["landscape"]["enabled"] else 0
    # Per cell: train, hessian, basin (when enabled), cka (+ distance), curve_fit, curve_eval
    # (each one job for all seeds or pairs), landscape (its cells), fge (when enabled), a
    # comparison per pair of cells (landscape.compare); then a
    # table per metric, merge, classify, plots, atlas (with landscapes), all.
    fge, basin = config["fge"]["enabled"], config["basin"]["enabled"]
    tables = (5 if pairs else 4) + fge + basin  # train, hessian, cka, distance (+ curves, ensembles, basin)
    # Each landscape and comparison is drawn by a job of its own (landscape_figure, comparison_figure).
    # cluster.seeds_per_job 1 (the SLURM-sized presets): a train job per seed and a curve_fit job per pair.
    one = config["cluster"]["seeds_per_job"] == 1
    trains, fits = cells * (len(seeds) if one else 1), (cells * (pairs if one else 1) if pairs else 0)
    expected = (
        trains + fits + cells * (2 + fge + basin) + (cells if pairs else 0) + 2 * (landscapes + comparisons) + tables + 4 + bool(landscapes)
    )
    copy_workflow(tmp_path)
    out = snakemake(tmp_path, "-n", "--quiet", "rules", "--configfile", str(preset))
    assert re.search(rf"total\s+{expected}\b", out.stdout + out.stderr), (expected, out.stdout[-1500:])

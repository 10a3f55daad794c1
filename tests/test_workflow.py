"""The Snakemake workflow end to end on a tiny config, then incremental reruns from `snakemake -n`.

The workflow files are copied into a temporary folder so the rerun tests can edit a metric's
source file (its mtime) without touching the repository.
"""

import json
import os
import re
import shutil
import time
from pathlib import Path

import pytest
import xarray as xr
import yaml
from workflow_runs import (
    TINY,
    all_jobs,
    copy_workflow,
    dry_run_resources,
    expected_job_counts,
    making,
    of_rule,
    planned_jobs,
    rerun_counts,
    snakemake,
    write_config,
)

from lltax.config.schema import validate_config

pytestmark = pytest.mark.slow


def total(config: dict) -> int:
    """Jobs of a whole run of ``config``, from its grid (workflow_runs.expected_job_counts)."""
    return sum(expected_job_counts(validate_config(config)).values())


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("workflow")
    copy_workflow(workdir)
    # Every job's log lists the modules it imported (Python's -X importtime): the ground truth
    # the derived source inputs are checked against.
    snakemake(workdir, env={"PYTHONPROFILEIMPORTTIME": "1"})
    return workdir


def test_slurm_profile_plans_per_job_resources(tmp_path):
    """Through the SLURM profile every torch job asks for one GPU with device: cuda and none
    otherwise, and its runtime follows its own cost: the smaller batch (more steps) and the
    wider model ask for more time (a dry run; tests/test_slurm_cluster.py submits for real)."""
    copy_workflow(tmp_path)
    config = {**TINY, "device": "cuda", "train": {"epochs": 300}, "grid": {**TINY["grid"], "train_fraction": [1.0]}}
    write_config(tmp_path, config)
    out = snakemake(tmp_path, "--profile", "profiles/slurm", "-n")
    text = out.stdout + out.stderr
    assert re.search(rf"total\s+{total(config)}\b", text), text[-2000:]
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
    assert len(jobs) == total(config) and all(resources.get("gpu", "0") == "0" for _, _, resources in jobs)


def test_every_job_gets_its_threads(tmp_path):
    """Rules declare `threads:` and pass them on: torch jobs get config `threads`, the rest 1."""
    copy_workflow(tmp_path)
    write_config(tmp_path, {**TINY, "threads": 2})
    out = snakemake(tmp_path, "-n", "-p")
    lines = (out.stdout + out.stderr).splitlines()
    commands = [line.split("Shell command: ", 1)[1] for line in lines if "Shell command: lltax " in line]
    assert len(commands) == total(TINY) - 1, commands[:3]  # every job but `all`
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
    assert len(commands) == 2 and re.search(rf"total\s+{total({**TINY, 'landscape': landscape})}\b", text), text[-1500:]
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
    from lltax.storage.atomic_files import hold_results_lock

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
    # Every record names the code that computed it: its command and the hash of its sources.
    from lltax.contract import METRIC_JOBS

    commands = {job.record: job.command for job in METRIC_JOBS}
    records = list(results.glob("width=*/**/*.json"))
    assert {path.name for path in records} == {"train.json", "hessian.json", "basin.json", "cka.json", "distance.json", "curve_eval.json"}
    for path in records:
        code = json.loads(path.read_text())["runtime"]["code"]
        assert code["command"] == commands[path.name] and len(code["sources_sha256"]) == 64, (path, code)


def test_report_bundles_the_figures(finished_run):
    snakemake(finished_run, "--report", "report.html")
    report = (finished_run / "report.html").read_text(errors="replace")
    assert "panels.png" in report and "landscape.png" in report


def test_unchanged_run_has_nothing_to_do(finished_run):
    assert planned_jobs(finished_run) == {}


@pytest.fixture(scope="module")
def jobs(finished_run):
    """Every job of the finished run with its files and command (a forced dry run)."""
    return all_jobs(finished_run)


def reruns(jobs, *rules):
    """What a change to the jobs of ``rules`` reruns: them and their dependants, counted per rule."""
    return rerun_counts(jobs, of_rule(jobs, *rules))


@pytest.mark.parametrize(
    ("section", "change", "rules"),
    [
        ("hessian", {"num_samples": 16}, ["hessian"]),
        # The CKA job writes the distances too: both tables are rebuilt (distances unchanged).
        ("cka", {"num_samples": 32}, ["cka"]),
        ("curves", {"points": [0, 0.5, 1]}, ["curve_eval"]),  # re-evaluated, not refitted
        ("plots", {"dpi": 80}, ["plots"]),
    ],
    ids=["hessian", "cka", "curve-points", "plots"],
)
def test_a_sections_settings_rerun_only_its_jobs_and_dependants(finished_run, jobs, section, change, rules):
    write_config(finished_run, {**TINY, section: {**TINY.get(section, {}), **change}})
    try:
        assert planned_jobs(finished_run) == reruns(jobs, *rules)
    finally:
        write_config(finished_run, TINY)


def imported_at_run_time(workdir) -> dict[str, set[str]]:
    """{rule: lltax source files (relative to the package) its jobs imported}, from the -X importtime logs."""
    from lltax.runtime.code_sources import module_file

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


def declared_sources(job, package) -> set[str]:
    """A job's code inputs: the lltax source files among its inputs, relative to the package."""
    package = Path(os.path.realpath(package))
    return {
        Path(os.path.realpath(p)).relative_to(package).as_posix() for p in job.inputs if Path(os.path.realpath(p)).is_relative_to(package)
    }


def test_derived_sources_cover_every_module_a_job_imports(finished_run, jobs):
    """Each job's declared code inputs are exactly the modules lltax.runtime.code_sources derives for its
    command, and include every lltax module its rule's jobs really imported."""
    from lltax.runtime.code_sources import relative_sources

    package = finished_run / "src" / "lltax"
    commands = {job.rule: job.command for job in jobs if job.command}
    imported = imported_at_run_time(finished_run)
    assert set(imported) == set(commands), sorted(set(imported) ^ set(commands))
    for job in jobs:
        expected = set(relative_sources(job.command, package)) if job.command else set()
        assert declared_sources(job, package) == expected, (job.rule, sorted(declared_sources(job, package) ^ expected))
    for rule, command in commands.items():
        declared = set(relative_sources(command, package))
        assert imported[rule] <= declared, (rule, sorted(imported[rule] - declared))
        assert "cli.py" in imported[rule] and "__init__.py" in imported[rule]


def test_editing_a_source_module_reruns_exactly_the_jobs_that_import_it(finished_run, jobs):
    """An edit of a module (its checksum, not its mtime: Snakemake compares small inputs' content)
    plans the jobs whose code inputs hold it and their dependants, nothing else. Every job's code
    inputs are checked module by module above; here Snakemake's reaction, on the modules that
    once went wrong and on one no job imports."""
    package = finished_run / "src" / "lltax"
    modules = sorted(source.relative_to(package).as_posix() for source in package.rglob("*.py"))
    unused = [m for m in modules if not any(m in declared_sources(job, package) for job in jobs)]
    # The landscape's BatchNorm recompute lives in bezier.py; CKA's input perturbation must not
    # retrain; every job reads config, io and cli; resource estimates change no result; the
    # landscape's drawing is a job of its own (issue 30.12).
    edited = ["metrics/hessian.py", "metrics/bezier.py", "metrics/mixup.py", "config/schema.py", "runtime/cost.py", "figures/landscape.py"]
    for module in edited + unused[:1]:
        source = package / module
        original = source.read_text()
        source.write_text(original + "\n# an edit\n")
        try:
            planned = planned_jobs(finished_run)
        finally:
            source.write_text(original)
        assert planned == rerun_counts(jobs, [job for job in jobs if module in declared_sources(job, package)]), module
        if module == "metrics/bezier.py":
            assert "landscape" in planned
        if module == "metrics/mixup.py":
            assert "cka" in planned and "train" not in planned
        if module == "config/schema.py":
            assert "train" in planned
        if module in ("runtime/cost.py", *unused):
            assert planned == {}, module
        if module == "figures/landscape.py":
            assert set(planned) == {"landscape_figure", "atlas", "all"}
    assert planned_jobs(finished_run) == {}  # every edit undone: nothing to do again


# Every torch job's results depend on the thread count (TORCH_JOB in rules/common.smk).
TORCH_RULES = ("train", "hessian", "basin", "cka", "curve_fit", "curve_eval", "landscape")


@pytest.mark.parametrize(
    ("change", "rules"),
    [
        ({"threads": 2}, TORCH_RULES),  # every torch job reruns (and the dataset says 2)
        ({"device": "auto"}, ()),  # no GPU here: auto is the CPU, the same jobs
        ({"data_dir": "./data/"}, ()),  # the same folder spelled differently
        ({"cluster": {"tflops": 5.0, "safety": 4}}, ()),  # resource estimates only
        ({"evaluate": {"batch_size": 100}}, ()),  # the by-hand `lltax evaluate` section
        ({"max_cells": 6000}, ()),  # how large a grid may be planned
        # A colour setting redraws the landscape pictures and the atlas, and recomputes nothing (issue 30.12).
        ({"landscape": {**TINY["landscape"], "color_limits": [0.01, 10.0]}}, ("landscape_figure", "atlas")),
    ],
    ids=["threads", "device-spelling", "data-dir-spelling", "cluster", "evaluate", "max-cells", "landscape-colors"],
)
def test_params_are_what_results_depend_on(finished_run, jobs, change, rules):
    from lltax.runtime.gpu_slots import count_gpus

    if "device" in change and count_gpus() > 0:
        pytest.skip("this machine has a GPU: device auto is CUDA here, another device than TINY's cpu")
    write_config(finished_run, {**TINY, **change})
    try:
        assert planned_jobs(finished_run) == reruns(jobs, *rules)
    finally:
        write_config(finished_run, TINY)


FIRST_CELL = "width=2/batch_size=32/label_noise=0.0/train_fraction=0.1/learning_rate=0.05/weight_decay=0.0005"


@pytest.mark.parametrize(
    "relative",
    [
        "seed=0/hessian.json",  # a record refused by the aggregate step, deleted: its cell's job makes it again
        "cka.json",
        "pair=0-1/curve.pt",
        "seed=0/model.pt",  # a deleted checkpoint retrains its cell, and every metric of that cell follows
        "landscape.png",  # a deleted landscape picture is drawn again, from landscape.nc (issue 30.13)
    ],
    ids=["hessian-record", "cka-record", "curve", "checkpoint", "landscape-picture"],
)
def test_a_deleted_per_job_file_is_made_again_by_a_plain_rerun(finished_run, jobs, relative):
    """The recovery rows of docs/running.md (When something goes wrong): delete the file, run
    `snakemake` as before: the job that makes it reruns, and what depends on it."""
    name = f"results/tiny/{FIRST_CELL}/{relative}"
    path = finished_run / name
    kept = path.with_name(path.name + ".kept")
    shutil.copy2(path, kept)
    path.unlink()
    try:
        assert planned_jobs(finished_run) == rerun_counts(jobs, making(jobs, name))
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


TOY_NUMERICS = '''"""Toy metric of tests/test_workflow.py: the l_p norm of a model's trainable parameters."""

import torch


def weight_norm(model: torch.nn.Module, power: float) -> float:
    return float(sum(p.detach().abs().pow(power).sum() for p in model.parameters() if p.requires_grad) ** (1 / power))
'''
TOY_JOB = '''"""``lltax weight-norm``: the toy metric of tests/test_workflow.py, one record per checkpoint."""

import argparse

from lltax.config.schema import parse_settings
from lltax.jobs.metric_inputs import load_model
from lltax.metrics.weight_norm import weight_norm
from lltax.runtime.device import resolve_device
from lltax.storage import checkpoint
from lltax.storage.atomic_files import one_output_each, write_json

HELP = "the l_p norm of each checkpoint's trainable parameters"
ARGUMENTS = {"checkpoints": {}, "settings": {}, "device": {}, "data_dir": {}, "out": {"help": "weight_norm.json per checkpoint"}}


def run(args: argparse.Namespace) -> int:
    settings = parse_settings(args.settings, "weight_norm")
    device = resolve_device(args.device)
    for path, out in one_output_each(args.checkpoints, args.out, "checkpoint"):
        model, meta = load_model(path, device)
        record = {"weight_norm": weight_norm(model, settings["power"]), "settings": settings}
        write_json(out, {**record, **checkpoint.provenance(meta, device)})
    return 0
'''
TOY_SECTION = """  weight_norm:
    type: object
    additionalProperties: false
    default: {}
    description: the toy metric of tests/test_workflow.py.
    properties:
      power: {type: number, exclusiveMinimum: 0, default: 2, description: "p of the l_p norm."}
"""
TOY_LINE = """    MetricJob("weight_norm", "weight-norm", "weight_norm.json", "seed", "weight_norm", (), {
        "weight_norm": Variable("weight_norm", "1", "l_p norm of the trainable parameters", POSITIVE),
    }, None),
)  # fmt: skip"""


def test_a_new_metric_is_its_numerics_its_job_its_schema_section_and_its_line_in_the_table(tmp_path):
    """A toy metric added in four places of a copy of lltax (docs/extending.md, "A metric") runs
    through the workflow: its jobs, its table, its variable in dataset.nc (the norm of each
    checkpoint, computed here), and a change of its settings reruns it and no training."""
    from lltax.jobs.metric_inputs import load_model

    copy_workflow(tmp_path)
    package = tmp_path / "src" / "lltax"
    (package / "metrics" / "weight_norm.py").write_text(TOY_NUMERICS)
    (package / "jobs" / "weight_norm.py").write_text(TOY_JOB)
    schema = package / "config" / "schema.yaml"
    text = schema.read_text()
    schema.write_text(text.replace("\n  distance:\n", "\n" + TOY_SECTION + "  distance:\n", 1))
    contract = package / "contract.py"
    text = contract.read_text()
    assert text.count(")  # fmt: skip") >= 1
    head, _, tail = text.partition("\n)  # fmt: skip\nMETRIC_JOB = ")
    contract.write_text(head + "\n" + TOY_LINE + "\nMETRIC_JOB = " + tail)

    config = {**TINY, "grid": {**TINY["grid"], "width": [2], "batch_size": [64]}, "basin": {"enabled": False}}
    config |= {"curves": {"enabled": False}, "landscape": {"enabled": False}, "weight_norm": {"power": 3}}
    write_config(tmp_path, config)
    env = {"PYTHONPATH": str(tmp_path / "src")}  # the copy's lltax, in the rules and in every job
    snakemake(tmp_path, env=env)

    results = tmp_path / "results" / "tiny"
    with xr.open_dataset(results / "dataset.nc", engine="netcdf4") as dataset:
        values = dataset["weight_norm"].values.ravel()
        assert dataset["weight_norm"].attrs["long_name"] == "l_p norm of the trainable parameters"
    checkpoints = sorted(results.rglob("model.pt"))
    assert len(checkpoints) == 2 and len(values) == 2
    for value, path in zip(values, checkpoints):
        model, _ = load_model(str(path), "cpu")
        expected = float(sum(p.detach().double().abs().pow(3).sum() for p in model.parameters()) ** (1 / 3))
        assert value == pytest.approx(expected, rel=1e-6)
        record = json.loads((path.parent / "weight_norm.json").read_text())
        assert value == record["weight_norm"] and record["settings"] == {"power": 3}

    before = snakemake(tmp_path, "-n", "--quiet", "rules", env=env)
    assert "weight_norm" not in before.stdout + before.stderr  # nothing to do
    write_config(tmp_path, {**config, "weight_norm": {"power": 2}})
    planned = snakemake(tmp_path, "-n", "--quiet", "rules", env=env).stdout
    assert re.search(r"seed_metric\s+1\b", planned) and not re.search(r"\btrain\s+\d", planned), planned

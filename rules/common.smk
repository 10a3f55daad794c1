# Settings and helper functions shared by the rules (no rules here: Snakemake's linter wants
# functions and rules in separate files).
import json
import os
import re
import sys
from pathlib import Path
from types import SimpleNamespace

from lltax.config.schema import read_config_file, validate_config
from lltax.config.checks import check_builders, check_path_length
from lltax.contract import (
    CURVE_EVAL_KEYS,
    CURVE_FIT_NOT_PASSED,
    DIAGNOSIS_MARKER,
    FGE_FIGURE,
    FIGURES,
    METRIC_JOBS,
    NOT_IN_DATASET,
    ConfigError,
)
from lltax.runtime.cost import memory_mb
from lltax.runtime.gpu_slots import count_gpus, torch_device_count
from lltax.config.grid import (
    CELL_REGEX,
    canonical_json,
    canonical_path,
    cell_path,
    checkpoint_file,
    compared_cells,
    expand_grid,
    parse_cell_path,
    seed_pairs,
    select_cells,
)
from lltax.storage.checksums import current_checksum
from lltax.storage.atomic_files import hold_results_lock, results_folder_holder
from lltax.runtime.job_time import check_job_time
from lltax.runtime.partitions import check_group_runtime, check_seeds_per_job, fitted_runtime, read_partitions
from lltax.results.records import METRIC_SECTIONS
from lltax.runtime.code_sources import PACKAGE_DIR, command_sources

# Schema + lltax's own checks; a bad config stops here, before any job runs. Snakemake's own
# YAML reading keeps the last of two equal keys silently: read each file again, strictly.
for _configfile in workflow.configfiles:
    read_config_file(_configfile)
CONFIG = validate_config(config)
check_job_time(CONFIG)  # a landscape or basin job that could not finish (lltax.runtime.cost's estimate)
check_seeds_per_job(CONFIG)
# Jobs started from here (local ones, and SLURM's, which inherit the environment) claim one of
# a GPU's gpu_slots_per_device slots (lltax.runtime.gpu_slots).
os.environ.update(LLTAX_GPU_SLOTS=str(CONFIG["gpu_slots_per_device"]))
# Own builders import where the jobs run: checked here unless the jobs get another software
# environment (--sdm conda/apptainer) or this is a job step of a cluster run.
if not workflow.remote_exec and not workflow.deployment_settings.deployment_method:
    check_builders(CONFIG)
RESULTS = f"{CONFIG['results_dir']}/{CONFIG['experiment']}"
RESULTS_LOCK = []  # the open lock file while this run holds the results folder (Snakefile onstart)
CELLS = [cell_path(cell) for cell in expand_grid(CONFIG["grid"])]
check_path_length(RESULTS, CELLS)
# A folder lltax diagnose wrote holds records computed with the diagnosis's settings: a workflow
# run would adopt them. Refused by name (another experiment name, or delete the folder).
if Path(RESULTS, DIAGNOSIS_MARKER).is_file():
    raise ConfigError(
        f"{RESULTS} is the folder of an lltax diagnose ({RESULTS}/{DIAGNOSIS_MARKER}); its records were computed with the "
        "diagnosis's settings: choose another experiment name or results_dir for the workflow, or delete that folder"
    )
# Another run holds the results folder: say so before Snakemake's own checks, which would
# advise --rerun-incomplete for the files that run is writing. (Whether this run is a dry run is
# not known yet: a real run is refused when it starts, Snakefile onstart.)
if not workflow.remote_exec and not workflow.subprocess_exec:
    _holder = results_folder_holder(RESULTS)
    if _holder:
        print(f"lltax: {RESULTS} is in use by another workflow run ({_holder}); a run started now is refused", file=sys.stderr)
SEEDS = CONFIG["seeds"]
# Checkpoints trained elsewhere (checkpoints.path): each seed's checkpoint.json (lltax import)
# stands where lltax's own model.pt would, and every metric rule reads it the same way.
EXTERNAL = CONFIG["checkpoints"]["path"]
CHECKPOINT = "checkpoint.json" if EXTERNAL else "model.pt"
# Threads of every torch job: declared as the rule's `threads:` and passed to the job, which
# pins torch to it (results depend on the thread count, not on the caller's environment).
THREADS = CONFIG["threads"]
CURVE_PAIRS = seed_pairs(SEEDS, CONFIG["curves"]["pairs"]) if CONFIG["curves"]["enabled"] else []
# GPU jobs request `resources: gpu=1`. `auto` counts the GPUs of the machine that builds the
# DAG: on a cluster whose login node has none, say `device: cuda`.
# `auto` also asks torch (in a subprocess): GPUs it cannot use (no CUDA build, a driver too old)
# would fail every job that was given `--device cuda`.
USE_GPU = CONFIG["device"] == "cuda" or (CONFIG["device"] == "auto" and count_gpus() > 0 and torch_device_count() > 0)
if CONFIG["device"] == "auto" and count_gpus() > 0 and not USE_GPU and not workflow.remote_exec:
    print(f"lltax: device auto: {count_gpus()} GPU(s) reported but torch cannot use them; the jobs run on the CPU", file=sys.stderr)
# A local run's `gpu` resource, unless given (--resources gpu=N): the visible GPUs x their slots,
# so GPU jobs run at once up to the slots the jobs can claim (a cluster run leaves it alone).
if USE_GPU and workflow.resource_settings.nodes is None and not workflow.remote_exec and "gpu" not in workflow.global_resources:
    workflow.global_resources["gpu"] = max(1, count_gpus()) * CONFIG["gpu_slots_per_device"]

# Runtime and memory requests are estimated for the device the jobs will use (lltax.runtime.cost).
COST_CONFIG = {**CONFIG, "device": "cuda" if USE_GPU else "cpu"}


# Every torch job runs on the device the resource request was made for, and its results depend
# on the thread count: both are params (a changed value reruns the job; `auto` and `cpu` on a
# machine without a GPU are the same job). The shell lines pass Snakemake's {threads}, which
# --cores may lower below `threads`: runtime.threads in train.json records what a job used. The data folder is canonical: `data`, `./data/` and
# its absolute path are one folder, so spelling it differently reruns nothing.
DEVICE = "cuda" if USE_GPU else "cpu"
DATA_DIR = canonical_path(CONFIG["data_dir"])
TORCH_JOB = {"data_dir": DATA_DIR, "device": DEVICE, "threads": THREADS}
# The resolved config stored in dataset.nc: everything that shaped its numbers, as the jobs saw
# it, and nothing else (figures, classification, resource estimates and the by-hand `evaluate`
# section change no number of it, so changing them does not rebuild it).
DATASET_CONFIG = canonical_json(
    {
        **{k: v for k, v in CONFIG.items() if k not in NOT_IN_DATASET},
        **TORCH_JOB,
    }
)
# The source files behind each rule's results are its job's lltax modules, derived from the
# imports (lltax.runtime.code_sources) and declared as inputs: editing one reruns exactly the rules whose
# jobs import it, and what depends on them (Snakemake does not track what a job imports).
SRC = Path(workflow.basedir) / "src" / "lltax"
if not SRC.is_dir():  # a workflow copied without the package: the installed lltax is what runs
    SRC = PACKAGE_DIR


def sources(command):
    """The lltax source files a job of `lltax <command>` imports."""
    return list(command_sources(command, SRC))


def check_contained(results):
    """Refuse a run whose results folder holds a link to outside it (Snakefile onstart)."""
    escape = outside_results(results)
    if escape:
        raise ConfigError(
            f"{escape} is a link to {escape.resolve()}, outside {results}: jobs would write there; "
            "replace the link by a folder (nothing is written outside <results_dir>/<experiment>/)"
        )


def torch_sees_cuda():
    """torch's own answer (no nvidia-smi on ROCm or in some containers); imported only here."""
    import torch

    return torch.cuda.is_available()


def check_local_device():
    """device: cuda for jobs that run on this machine, which has no GPU, would fail in every job:
    refused when the run starts (a dry run, or a cluster profile whose nodes have GPUs, plans it)."""
    if CONFIG["device"] == "cuda" and workflow.local_exec and count_gpus() == 0 and not torch_sees_cuda():
        raise ConfigError(
            "config key 'device': cuda, but this machine has no GPU and the jobs run here; set device: auto or cpu, "
            "or run with a cluster profile whose nodes have GPUs"
        )


def partitions():
    """The SLURM partitions' limits (lltax.runtime.partitions): cluster.partitions, else the SLURM
    executor's slurm-partition-config (known in a real run only); None: no caps."""
    path = CONFIG["cluster"]["partitions"] or getattr(workflow.executor_settings, "partition_config", None)
    return read_partitions(str(path)) if path else None


def runtime(rule):
    """A job's runtime request in minutes (lltax.runtime.cost): scales with the model's FLOPs and the
    number of steps of its cell; doubles on every retry except training's (which resumes), at
    most the partitions' max_runtime; a job that fits no partition is refused (lltax.runtime.partitions)."""

    # (one call per line start: snakefmt reads a line that starts with `rule` as a rule)
    def request(wildcards, attempt):
        cell = parse_cell_path(wildcards.cell)
        return fitted_runtime(rule, wildcards.cell, cell, COST_CONFIG, attempt, partitions(), int(USE_GPU), THREADS)

    return request


def memory(rule):
    """A job's memory request in MB (lltax.runtime.cost): the dataset and a few model copies."""
    return lambda wildcards: memory_mb(rule, parse_cell_path(wildcards.cell), COST_CONFIG)


TORCH_RULES = set()  # the cost rules of the torch jobs' rules, for check_partitions


def check_partitions():
    """Refuse a plan with a job that fits no partition, before anything is submitted: every
    torch rule's job of every cell, first attempt (lltax.runtime.partitions). Called once the rules
    are defined (Snakefile), and again when a real run starts (its executor's partitions)."""
    if partitions() is None:
        return
    requests = {}
    for name in sorted(TORCH_RULES):
        for cell in CELLS:
            minutes = fitted_runtime(name, cell, parse_cell_path(cell), COST_CONFIG, 1, partitions(), int(USE_GPU), THREADS)
            requests[name, cell] = (name, cell, minutes, memory_mb(name, parse_cell_path(cell), COST_CONFIG))
    # A group submission (the SLURM profile groups metric jobs) asks for the sum of its jobs'
    # runtimes. Snakemake gives the workflow its group settings when a run starts (onstart),
    # not while a dry run plans: the groups are checked then, before anything is submitted.
    groups = workflow.group_settings.overwrite_groups
    for group, size in workflow.group_settings.group_components.items():
        grouped = [request for (name, _), request in requests.items() if groups.get(name) == group]
        if grouped:
            check_group_runtime(group, size, grouped, partitions(), int(USE_GPU), THREADS)


def torch_resources(rule):
    """The requests of a torch job: one GPU when the jobs use CUDA, runtime and memory from its cost."""
    TORCH_RULES.add(rule)
    return {"gpu": 1 if USE_GPU else 0, "runtime": runtime(rule), "mem_mb": memory(rule)}


def cell_log(rule):
    return f"{RESULTS}/logs/{rule}/{job_path(rule)}.log"


def cell_benchmark(rule):
    return f"{RESULTS}/benchmarks/{rule}/{job_path(rule)}.tsv"


# cluster.seeds_per_job 1: one train job per seed and one curve_fit job per curve, their files
# named by the wildcards seed and pair (null: a cell's seeds and curves in one job each).
ONE_PER_JOB = CONFIG["cluster"]["seeds_per_job"] == 1
JOB_FOLDER = {"train": "seed={seed}", "curve_fit": "pair={pair}"} if ONE_PER_JOB else {}


def job_path(name):
    """A job's own path under the results folder: its cell, and its seed or pair when it has one."""
    return os.path.join("{cell}", JOB_FOLDER[name]) if name in JOB_FOLDER else "{cell}"


def job_seeds(wildcards):
    """The seeds one train job trains."""
    return [wildcards.seed] if ONE_PER_JOB else [str(seed) for seed in SEEDS]


def job_pairs(wildcards):
    """The curves (seed pairs) one curve_fit job fits."""
    return [tuple(int(s) for s in wildcards.pair.split("-"))] if ONE_PER_JOB else CURVE_PAIRS


def job_files(kind, name):
    """A train or curve_fit job's outputs `name`: per_seed / per_pair, or its own one."""
    if ONE_PER_JOB:
        return [f"{RESULTS}/{job_path(kind)}/{name}"]
    return per_seed(name) if kind == "train" else per_pair(name)


def section(name, *, drop=()):
    """A config section as one canonical JSON string: key order cannot trigger reruns."""
    return canonical_json({k: v for k, v in CONFIG[name].items() if k not in drop})


def per_seed(name):
    """A per-cell job's file `name` for every seed, e.g. <cell>/seed=S/model.pt."""
    return [f"{RESULTS}/{{cell}}/seed={seed}/{name}" for seed in SEEDS]


def external_files(wildcards):
    """The files trained elsewhere of a cell's seeds, in SEEDS order (checkpoints.path)."""
    cell = parse_cell_path(wildcards.cell)
    return [checkpoint_file(EXTERNAL, cell, seed) for seed in SEEDS]


def external_checksums(wildcards):
    """The content checksum of each of a cell's files now (lltax.storage.checksums.current_checksum: the
    import's own when the file's size, times and inode are the recorded ones, else read): a
    param of the import rule, so new content under an old modification time (cp -p, rsync -t,
    tar) reruns the import and everything that depends on it."""
    cell = parse_cell_path(wildcards.cell)
    return [
        current_checksum(checkpoint_file(EXTERNAL, cell, seed), f"{RESULTS}/{wildcards.cell}/seed={seed}/checkpoint.json") for seed in SEEDS
    ]


def inside_results(path):
    """Whether ``path`` lies inside the results folder (where the workflow writes)."""
    return Path(path).resolve().is_relative_to(Path(RESULTS).resolve())


def missing_external_files():
    """Every file checkpoints.path names that does not exist (all reported at once)."""
    if not EXTERNAL:
        return []
    cells = [parse_cell_path(cell) for cell in CELLS]
    return [path for cell in cells for seed in SEEDS if not os.path.isfile(path := checkpoint_file(EXTERNAL, cell, seed))]


def per_pair(name):
    """A per-cell job's file `name` for every curve pair, e.g. <cell>/pair=A-B/curve.pt."""
    return [f"{RESULTS}/{{cell}}/pair={a}-{b}/{name}" for a, b in CURVE_PAIRS]


# Landscape pictures of the cells landscape.cells names: around the first seed, towards the
# second, through the third (directions: seeds); atlas.png shows one cell per phase of them.
LANDSCAPE_SEEDS = SEEDS[:3]
LANDSCAPE_CELLS = [cell_path(cell) for cell in select_cells(expand_grid(CONFIG["grid"]), CONFIG["landscape"]["cells"])]
LANDSCAPE_OUTPUTS = (
    [f"{RESULTS}/{cell}/landscape.nc" for cell in LANDSCAPE_CELLS] if CONFIG["landscape"]["enabled"] and len(SEEDS) >= 2 else []
)
ATLAS = [f"{RESULTS}/figures/atlas.{CONFIG['plots']['format']}"] if LANDSCAPE_OUTPUTS else []
# directions: curve: the plane holds the curve fitted from the first seed to the second.
LANDSCAPE_CURVE = (
    [f"{RESULTS}/{{cell}}/pair={SEEDS[0]}-{SEEDS[1]}/curve.pt"]
    if CONFIG["landscape"]["directions"] == "curve" and LANDSCAPE_OUTPUTS
    else []
)
# Two cells' models on one landscape (landscape.compare): <cell A>/vs_<B's values>/comparison.nc,
# keyed by that folder, valued by cell B's folder. A job's settings leave out what only picks cells,
# and the computation's leave out what only the drawing reads: a colour setting redraws
# landscape.png / comparison.png / atlas.png (their own jobs) and recomputes nothing.
LANDSCAPE_DRAWING = ("levels", "color_limits")
LANDSCAPE_SETTINGS = section("landscape", drop=("enabled", "cells", "compare", *LANDSCAPE_DRAWING))
LANDSCAPE_FIGURE_SETTINGS = canonical_json({k: CONFIG["landscape"][k] for k in LANDSCAPE_DRAWING})
LANDSCAPE_FIGURES = [path.removesuffix("landscape.nc") + "landscape.png" for path in LANDSCAPE_OUTPUTS]
COMPARISONS = (
    {
        f"{cell_path(first)}/{name}": cell_path(second)
        for first, second, name in compared_cells(expand_grid(CONFIG["grid"]), CONFIG["landscape"]["compare"])
    }
    if CONFIG["landscape"]["enabled"] and SEEDS
    else {}
)
# The plane through both models; BatchNorm statistics recomputed at every point (A's would
# misprice B); spectra belong to single models (each cell's landscape.nc).
COMPARISON_SETTINGS = canonical_json(
    {**json.loads(LANDSCAPE_SETTINGS), "directions": "seeds", "batchnorm_2d": "recompute", "spectrum_steps": 0}
)
COMPARISON_OUTPUTS = [f"{RESULTS}/{folder}/comparison.nc" for folder in COMPARISONS]
COMPARISON_FIGURES = [f"{RESULTS}/{folder}/comparison.png" for folder in COMPARISONS]

FIGURE = f"{RESULTS}/figures/{{name}}.{CONFIG['plots']['format']}"
FIGURE_NAMES = [*FIGURES] + ([FGE_FIGURE] if CONFIG["fge"]["enabled"] else [])


def metric_enabled(job):
    """A metric of lltax.contract.METRIC_JOBS runs unless its section's `enabled` is false
    (curves: when there is a pair of seeds to fit)."""
    if job.scope == "curve":
        return bool(CURVE_PAIRS)
    return not job.section or CONFIG[job.section].get("enabled", True)


# The metric tables of this run and their records (lltax.contract.METRIC_JOBS): per-seed files,
# per-cell files, then the curves (the merge orders them as the contract does).
METRIC_JOBS_ON = [job for job in METRIC_JOBS if metric_enabled(job)]
PER_SEED_FILE = {job.metric: job.record for job in METRIC_JOBS_ON if job.scope == "seed"}
PER_CELL_FILE = {job.metric: job.record for job in METRIC_JOBS_ON if job.scope in ("pairs", "cell")}
METRICS = [*PER_SEED_FILE, *PER_CELL_FILE] + [job.metric for job in METRIC_JOBS_ON if job.scope == "curve"]
# Metrics with no own rule (their table line says rule None) run as `seed_metric` jobs, one per cell (rules/metrics.smk),
# keyed by their record's file name.
SEED_METRICS = {job.record: job for job in METRIC_JOBS_ON if job.rule is None}


def metric_outputs(wildcards):
    metric = wildcards.metric
    if metric in PER_SEED_FILE:
        return [f"{RESULTS}/{cell}/seed={seed}/{PER_SEED_FILE[metric]}" for cell in CELLS for seed in SEEDS]
    if metric in PER_CELL_FILE:
        return [f"{RESULTS}/{cell}/{PER_CELL_FILE[metric]}" for cell in CELLS]
    return [f"{RESULTS}/{cell}/pair={a}-{b}/curve_eval.json" for cell in CELLS for a, b in CURVE_PAIRS]


# Every per-job file the run keeps, checkpoints included, is a target of `all`: one that was
# deleted (or refused by the aggregate step and deleted) is made again by a plain rerun, and
# what depends on it follows. As inputs of the tables alone, a missing one would not be
# recreated while the tables look up to date.
PER_JOB_FILES = (
    [f"{RESULTS}/{cell}/seed={seed}/{CHECKPOINT}" for cell in CELLS for seed in SEEDS]
    + [f"{RESULTS}/{cell}/pair={a}-{b}/curve.pt" for cell in CELLS for a, b in CURVE_PAIRS]
    + [path for metric in METRICS for path in metric_outputs(SimpleNamespace(metric=metric))]
)


def outside_results(results):
    """A folder or file under the results folder that is a link to somewhere outside it:
    jobs would write through it, outside <results_dir>/<experiment>/."""
    root = Path(results).resolve()
    for folder, subfolders, files in os.walk(results):
        for name in subfolders + files:
            path = Path(folder) / name
            if path.is_symlink() and not path.resolve().is_relative_to(root):
                return path
    return None


def metric_config(wildcards):
    """The part of the config a metric's table is shaped by: grid, seeds (and curve points), and
    what its records are checked against: the checkpoints' train, dataset and model sections and
    the metric's own section (a record computed with other settings is refused, naming the key)."""
    shape = {"grid": CONFIG["grid"], "seeds": SEEDS, "checkpoint": CHECKPOINT}  # records are checked against CHECKPOINT
    shape.update({name: CONFIG[name] for name in ("train", "dataset", "model")})
    if wildcards.metric in METRIC_SECTIONS:
        name = METRIC_SECTIONS[wildcards.metric][0]
        shape[name] = CONFIG[name]
    return canonical_json(shape)


# Checkpoints trained elsewhere: every file the template names is found before any job runs
# (all missing ones in one message, rather than Snakemake's first missing input).
if EXTERNAL:
    _inside = [path for cell in CELLS for seed in SEEDS if inside_results(path := checkpoint_file(EXTERNAL, parse_cell_path(cell), seed))]
    if _inside:
        raise ConfigError(
            f"config key 'checkpoints.path': it names {len(_inside)} file(s) inside the results folder {RESULTS}, e.g. {_inside[0]}: "
            "the workflow writes there (its own checkpoint.json for each seed); name the files trained elsewhere, outside it"
        )
    _missing = missing_external_files()
    if _missing:
        raise ConfigError(
            f"config key 'checkpoints.path': {len(_missing)} of the {len(CELLS) * len(SEEDS)} files it names do not exist, "
            f"e.g. {', '.join(_missing[:3])}"
        )

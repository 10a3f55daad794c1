# Settings and helper functions shared by the rules (no rules here: Snakemake's linter wants
# functions and rules in separate files).
from pathlib import Path

from lltax.config import CELL_REGEX, canonical_json, cell_path, expand_grid, parse_cell_path, read_config_file, seed_pairs, validate_config
from lltax.cost import memory_mb, runtime_minutes
from lltax.gpu import count_gpus
from lltax.io import hold_results_lock

# Schema + lltax's own checks; a bad config stops here, before any job runs. Snakemake's own
# YAML reading keeps the last of two equal keys silently: read each file again, strictly.
for _configfile in workflow.configfiles:
    read_config_file(_configfile)
CONFIG = validate_config(config)
RESULTS = f"{CONFIG['results_dir']}/{CONFIG['experiment']}"
RESULTS_LOCK = []  # the open lock file while this run holds the results folder (Snakefile onstart)
CELLS = [cell_path(cell) for cell in expand_grid(CONFIG["grid"])]
SEEDS = CONFIG["seeds"]
# Threads of every torch job: declared as the rule's `threads:` and passed to the job, which
# pins torch to it (results depend on the thread count, not on the caller's environment).
THREADS = CONFIG["threads"]
CURVE_PAIRS = seed_pairs(SEEDS, CONFIG["curves"]["pairs"]) if CONFIG["curves"]["enabled"] else []
SRC = Path(workflow.basedir) / "src" / "lltax"
# GPU jobs request `resources: gpu=1`. `auto` counts the GPUs of the machine that builds the
# DAG: on a cluster whose login node has none, say `device: cuda`.
USE_GPU = CONFIG["device"] == "cuda" or (CONFIG["device"] == "auto" and count_gpus() > 0)
# Runtime and memory requests are estimated for the device the jobs will use (lltax.cost).
COST_CONFIG = {**CONFIG, "device": "cuda" if USE_GPU else "cpu"}


# The source files behind each rule's results: declared as inputs, so editing one reruns the
# rule and what depends on it (Snakemake does not track modules a job imports).
# Every job that reads or writes a checkpoint also depends on its format (checkpoint.py) and
# on how torch is set up (device.py).
JOB = ["checkpoint.py", "device.py"]
SOURCES = {
    "train": ["train.py", "sgd.py", "evaluation.py", "data.py", "importing.py", "models/__init__.py", "models/resnet.py", "models/resnet1d.py", "models/vgg.py", "models/mlp.py", *JOB],
    "hessian": ["metrics/hessian.py", "metrics/hvp.py", "metrics/lanczos.py", "metrics/trace.py", "metrics/pyhessian_backend.py", *JOB],
    "cka": ["metrics/cka.py", "metrics/distance.py", *JOB],
    "curves": ["metrics/curves.py", "metrics/bezier.py", "sgd.py", *JOB],
    "landscape": ["landscape.py", *JOB],
    "dataset": ["dataset.py"],
    "phases": ["phases.py"],
    "plots": ["plots.py", "plots_maps.py", "plots_lines.py", "plots_grid.py"],
}


def runtime(rule):
    """A job's runtime request in minutes (lltax.cost): scales with the model's FLOPs and the
    number of steps of its cell; doubles on every retry, so a job that hit its time limit
    gets twice as long."""
    return lambda wildcards, attempt: runtime_minutes(rule, parse_cell_path(wildcards.cell), COST_CONFIG, attempt)


def memory(rule):
    """A job's memory request in MB (lltax.cost): the dataset and a few model copies."""
    return lambda wildcards: memory_mb(rule, parse_cell_path(wildcards.cell), COST_CONFIG)


def sources(name):
    return [SRC / path for path in SOURCES[name]]


def section(name, *, drop=()):
    """A config section as one canonical JSON string: key order cannot trigger reruns."""
    return canonical_json({k: v for k, v in CONFIG[name].items() if k not in drop})


def per_seed(name):
    """A per-cell job's file `name` for every seed, e.g. <cell>/seed=S/model.pt."""
    return [f"{RESULTS}/{{cell}}/seed={seed}/{name}" for seed in SEEDS]


def per_pair(name):
    """A per-cell job's file `name` for every curve pair, e.g. <cell>/pair=A-B/curve.pt."""
    return [f"{RESULTS}/{{cell}}/pair={a}-{b}/{name}" for a, b in CURVE_PAIRS]


# 1D interpolation between the first two seeds, 2D surface around the first.
LANDSCAPE_SEEDS = SEEDS[:2]
LANDSCAPE_OUTPUTS = (
    [f"{RESULTS}/{cell}/landscape.nc" for cell in CELLS]
    if CONFIG["landscape"]["enabled"] and len(SEEDS) >= 2
    else []
)

FIGURE = f"{RESULTS}/figures/{{name}}.{CONFIG['plots']['format']}"

PER_SEED_FILE = {"train": "train.json", "hessian": "hessian.json"}
PER_CELL_FILE = {"cka": "cka.json", "distance": "distance.json"}
METRICS = [*PER_SEED_FILE, *PER_CELL_FILE] + (["curves"] if CURVE_PAIRS else [])


def metric_outputs(wildcards):
    metric = wildcards.metric
    if metric in PER_SEED_FILE:
        return [f"{RESULTS}/{cell}/seed={seed}/{PER_SEED_FILE[metric]}" for cell in CELLS for seed in SEEDS]
    if metric in PER_CELL_FILE:
        return [f"{RESULTS}/{cell}/{PER_CELL_FILE[metric]}" for cell in CELLS]
    return [f"{RESULTS}/{cell}/pair={a}-{b}/curve_eval.json" for cell in CELLS for a, b in CURVE_PAIRS]


def metric_config(wildcards):
    """The part of the config a metric's table is shaped by: grid, seeds (and curve points)."""
    shape = {"grid": CONFIG["grid"], "seeds": SEEDS}
    if wildcards.metric == "curves":
        shape["curves"] = {"points": CONFIG["curves"]["points"], "pairs": CONFIG["curves"]["pairs"]}
    return canonical_json(shape)

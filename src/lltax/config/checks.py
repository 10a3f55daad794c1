"""lltax's own checks of a config, beyond what its JSON schema can say: nesting, seeds,
finiteness, full-string patterns, paths a command line and Snakemake can take, relations between
keys of one section, plot keys, batch and model sizes against the data, own builders importable."""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Any

from lltax.contract import AXES, DATASET_SIZES, VARIABLE_ATTRS, ConfigError
from lltax.runtime.job_limits import check_job_memory
from lltax.runtime.memory import parameter_estimate

# Deepest nesting a config may have: the schema's deepest value is 3 levels down; far deeper
# input (YAML aliases, lists of lists) would exhaust Python's recursion in the checks.
MAX_DEPTH = 20
MAX_VALUES = 1_000_000
# Seeds are stored as int64 (netCDF coordinates) and fed to torch's generators.
MAX_SEED = 2**63 - 1
# File-system limits (Linux): a path component, and a whole path.
NAME_MAX, PATH_MAX = 255, 4096
# The longest file name lltax writes under a cell (its resume snapshot), and the deepest level.
LONGEST_FILE = "/seed=00000000000000000000/train_snapshot.pt"
# Refuse models above this many parameters before training: 1e9 float32 parameters are 4 GB of
# weights and ~16 GB with gradients and momentum, beyond any single job this tool schedules.
MAX_PARAMETERS = 1_000_000_000
# Landscape ranges and basin radii are multiples of the weights' (filter-normalized) norm: beyond
# 1e6 of it the perturbed float32 weights and the loss overflow long before float64 coordinates do
# (1e308 gives inf and NaN surfaces), and no basin is that wide.
MAX_RANGE = 1e6
# Basin radii halve ``coarse`` times and bisect ``refine`` times: beyond 2^-64 of max_radius a
# radius is below what float32 weights resolve (and 2^-1024 is below what a float represents).
MAX_HALVINGS = 64


def check_depth(value: Any, key: str = "", depth: int = 0) -> None:
    """No value nested deeper than MAX_DEPTH and at most MAX_VALUES values in all, counting a
    YAML alias each time it is used (checked without recursing, stopping at the bound)."""
    stack = [(value, key, depth)]
    visited = 0
    while stack:
        item, where, level = stack.pop()
        visited += 1
        if visited > MAX_VALUES:
            raise ConfigError(
                f"the config expands to more than {MAX_VALUES:,} values (YAML aliases used inside aliases?); no config needs that many"
            )
        if level > MAX_DEPTH:
            raise ConfigError(f"config key {where!r} is nested more than {MAX_DEPTH} levels deep; no config value is")
        children = item.items() if isinstance(item, dict) else enumerate(item) if isinstance(item, list) else ()
        stack.extend((child, f"{where}.{name}" if where else str(name), level + 1) for name, child in children)


def check_seeds(seeds: Any) -> None:
    """``seeds`` is a count >= 1 or a list of distinct integers >= 0; say which rule is broken."""
    allowed = f"a number of seeds >= 1 (seeds 0..n-1) or a list of distinct integers in [0, {MAX_SEED}]"
    if isinstance(seeds, bool):
        raise ConfigError(f"config key 'seeds': {seeds!r} is not allowed; give {allowed}")
    if isinstance(seeds, int) and not 1 <= seeds <= 100_000:
        raise ConfigError(f"config key 'seeds': {seeds} seeds is not allowed; give {allowed} (at most 100000 seeds)")
    if isinstance(seeds, list):
        if not seeds:
            raise ConfigError(f"config key 'seeds': the list is empty; give {allowed}")
        bad = [s for s in seeds if isinstance(s, bool) or not isinstance(s, int) or not 0 <= s <= MAX_SEED]
        if bad:
            raise ConfigError(f"config key 'seeds': {bad} are not integers in [0, {MAX_SEED}] (int64, torch's generators); give {allowed}")
        repeated = sorted({s for s in seeds if seeds.count(s) > 1})
        if repeated:
            raise ConfigError(f"config key 'seeds': seeds {repeated} are repeated; give {allowed}")
    elif seeds is not None and not isinstance(seeds, int):
        raise ConfigError(f"config key 'seeds': {seeds!r} is not allowed; give {allowed}")


def check_finite(value: Any, key: str) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"config key {key!r}: {value!r} is not a finite number")
    if isinstance(value, dict):
        for name, item in value.items():
            check_finite(item, f"{key}.{name}" if key else str(name))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            check_finite(item, f"{key}.{index}")


def check_plots_and_ranges(config: dict) -> None:
    metric = config["plots"]["line_metric"]
    if metric not in VARIABLE_ATTRS:
        raise ConfigError(f"config key 'plots.line_metric': {metric!r} is not a dataset variable; choose one of {sorted(VARIABLE_ATTRS)}")
    group = config["plots"]["line_group"]
    if group != "auto" and group not in AXES:
        raise ConfigError(f"config key 'plots.line_group': {group!r} is not a grid axis; choose 'auto' or one of {list(AXES)}")
    for section in SECTION_CHECKS:
        check_section(section, config[section], where="config key")
    from lltax.config.grid import compared_cells, expand_grid, select_cells  # grid imports this module's errors

    cells = expand_grid(config["grid"])  # after check_grid_size: at most max_cells
    select_cells(cells, config["landscape"]["cells"])
    compared_cells(cells, config["landscape"]["compare"])
    if config["landscape"]["enabled"] and config["landscape"]["directions"] == "curve" and not config["curves"]["enabled"]:
        raise ConfigError(
            "config key 'landscape.directions': curve is the plane through the curve fitted from seed s0 to s1; "
            "set curves.enabled: true or choose random, eigenvectors, seeds or pca"
        )
    if config["landscape"]["enabled"] and config["landscape"]["directions"] == "pca":
        if config["checkpoints"]["path"] is not None:
            raise ConfigError(
                "config key 'landscape.directions': pca needs the training trajectory that lltax's own training keeps; "
                "checkpoints trained elsewhere (checkpoints.path) have none: choose random, eigenvectors, seeds or curve"
            )
        if not config["train"]["trajectory"]:
            raise ConfigError(
                "config key 'landscape.directions': pca needs each model's training trajectory; set train.trajectory: true "
                "(the cells train again, keeping their path) or choose random, eigenvectors, seeds or curve"
            )


def _check_hessian(hessian: dict, where: str) -> None:
    if hessian["top_k"] > hessian["max_iterations"]:
        raise ConfigError(
            f"{where} 'hessian.top_k': {hessian['top_k']} eigenvalues need at least as many iterations; "
            f"hessian.max_iterations is {hessian['max_iterations']}"
        )


def _check_range(value: float | None, key: str, where: str) -> None:
    if value is not None and not abs(value) <= MAX_RANGE:
        raise ConfigError(
            f"{where} {key!r}: {value!r} is beyond {MAX_RANGE:g} times the weights' norm; perturbed float32 weights and "
            "the loss overflow to inf/NaN there (lltax.config.checks.MAX_RANGE)"
        )


def _check_landscape(landscape: dict, where: str) -> None:
    low, high = landscape["range_1d"]
    for value in (low, high):
        _check_range(value, "landscape.range_1d", where)
    for key in ("range_2d", "range_b"):
        _check_range(landscape.get(key), f"landscape.{key}", where)
    if not low < high:
        raise ConfigError(f"{where} 'landscape.range_1d': {[low, high]} must be [low, high] with low < high")
    limits = landscape["color_limits"]
    if limits and not limits[0] < limits[1]:
        raise ConfigError(f"{where} 'landscape.color_limits': {limits} must be [low, high] with 0 < low < high")


def _check_basin(basin: dict, where: str) -> None:
    for key in ("max_radius", "convexity_radius"):
        _check_range(basin[key], f"basin.{key}", where)
    for key in ("coarse", "refine"):
        if basin[key] > MAX_HALVINGS:
            raise ConfigError(
                f"{where} 'basin.{key}': {basin[key]} halvings of basin.max_radius go below what float32 weights resolve "
                f"(2^-{MAX_HALVINGS} of it); at most {MAX_HALVINGS}"
            )
    if basin["convexity_points"] and basin["directions"] < 2:
        raise ConfigError(
            f"{where} 'basin.convexity_points': {basin['convexity_points']} needs basin.directions >= 2: "
            f"the convexity grid lies on the plane of the first two (basin.directions is {basin['directions']})"
        )


def _check_fge(fge: dict, where: str) -> None:
    if fge["cycle_epochs"] % 2:
        raise ConfigError(
            f"{where} 'fge.cycle_epochs': {fge['cycle_epochs']} is odd; each cycle takes its snapshot at its middle epoch, "
            "so it must be even (2, 4, ...)"
        )
    if fge["lr_min"] > fge["lr_max"]:
        raise ConfigError(
            f"{where} 'fge.lr_min': {fge['lr_min']} is above fge.lr_max {fge['lr_max']}; a cycle goes from lr_max down to lr_min"
        )


# Checks of one section that the schema cannot express (relations between its keys): run on the
# config before any job, and on a job's --settings, so a hand-run command is held to the same rules.
SECTION_CHECKS = {"hessian": _check_hessian, "landscape": _check_landscape, "basin": _check_basin, "fge": _check_fge}


def check_section(section: str, values: dict, where: str = "--settings key") -> None:
    """lltax's own checks of a filled-in config section (ConfigError naming the key)."""
    if section in SECTION_CHECKS:
        SECTION_CHECKS[section](values, where)


def check_sizes(config: dict) -> None:
    """Batch sizes against the data each cell trains on, model sizes against memory, and each
    landscape and basin job's results against memory_budget_gb (``check_job_memory``; their run
    time is checked when the workflow plans, ``lltax.runtime.job_time``)."""
    _check_sizes(config)
    check_job_memory(config)


def _check_sizes(config: dict) -> None:
    name = config["dataset"]["name"]
    if name not in DATASET_SIZES:
        return  # your own dataset: its size is known only once loaded (the jobs check it then)
    total, input_shape = DATASET_SIZES[name]
    smallest = min(round(fraction * total) for fraction in config["grid"]["train_fraction"])
    if smallest < 1:
        raise ConfigError(
            f"config key 'grid.train_fraction': {min(config['grid']['train_fraction'])} of {total} {name} samples leaves none"
        )
    for key, value in (("grid.batch_size", max(config["grid"]["batch_size"])), ("curves.batch_size", config["curves"]["batch_size"])):
        if value > smallest:
            raise ConfigError(
                f"config key {key!r}: batch size {value} is larger than the {smallest} training samples of the smallest "
                f"train_fraction ({min(config['grid']['train_fraction'])} of {total} {name} samples); lower it or raise the fraction"
            )
    poison = config["train"]["poison"]
    if poison:  # drawn from the samples each cell leaves out: the largest fraction leaves the fewest
        largest = max(config["grid"]["train_fraction"])
        left = total - math.floor(largest * total + 0.5)
        if poison > left:
            raise ConfigError(
                f"config key 'train.poison': {poison} poisoned samples are taken from the training samples a cell leaves out, "
                f"but train_fraction {largest} of {total} {name} samples leaves {left}; lower train.poison or train_fraction"
            )
    model, width = config["model"]["name"], max(config["grid"]["width"])
    if ":" in model:
        return  # your own builder: its size is known only once built (in the train job)
    parameters = parameter_estimate(model, width, input_shape)
    if parameters > MAX_PARAMETERS:
        raise ConfigError(
            f"config key 'grid.width': {model} at width {width} has about {parameters:.2g} parameters "
            f"({4 * parameters / 1e9:.0f} GB of float32 weights before gradients and momentum); the limit is {MAX_PARAMETERS:.0e}"
        )


def check_strings(value: Any, key: str = "") -> None:
    """No string of the config holds a newline or NUL: no value needs one, and in a job's
    command line it would end the command (JSON schema's ``$`` lets a final newline pass)."""
    if isinstance(value, str) and ("\n" in value or "\0" in value or "\r" in value):
        raise ConfigError(f"config key {key!r}: {value!r} holds a line break or NUL, which no config value may")
    children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for name, item in children:
        check_strings(item, f"{key}.{name}" if key else str(name))


def check_paths(config: dict) -> None:
    """Folders a command line and Snakemake can take, within the file system's limits."""
    for key in ("results_dir", "data_dir"):
        value = config[key]
        if not value.strip():
            raise ConfigError(f"config key {key!r}: {value!r} is not allowed; give a non-empty folder path")
        if os.path.normpath(value).startswith("-"):  # ./-x is -x again once a path is normalized
            raise ConfigError(
                f"config key {key!r}: {value!r} starts with '-', which every job's command line would read as an option; "
                "give an absolute path, or a folder name that does not start with '-'"
            )
        long = [part for part in Path(value).parts if len(part.encode()) > NAME_MAX]
        if long:
            raise ConfigError(
                f"config key {key!r}: the folder name {long[0][:40]!r}... is longer than {NAME_MAX} bytes, the file system's limit"
            )
    if re.search(r"[{}]", config["results_dir"]):
        raise ConfigError(
            f"config key 'results_dir': {config['results_dir']!r} holds '{{' or '}}', which Snakemake reads as a wildcard in every output path; "
            "choose a folder name without braces"
        )
    if os.path.normpath(f"{config['results_dir']}/{config['experiment']}").startswith("-"):
        raise ConfigError(
            f"config keys 'results_dir' and 'experiment': {config['results_dir']}/{config['experiment']} starts with '-' once "
            "normalized, which every job's command line would read as an option; give results_dir as an absolute path"
        )
    if len(config["experiment"].encode()) > NAME_MAX:
        raise ConfigError(f"config key 'experiment': {len(config['experiment'])} characters; a folder name has at most {NAME_MAX} bytes")


def check_grid_size(config: dict) -> None:
    """A grid of more than ``max_cells`` cells is refused before the DAG is built (its cost
    grows with the cells: benchmarks/bench_dag.py)."""
    cells = math.prod(len(config["grid"][axis]) for axis in AXES)
    if cells > config["max_cells"]:
        sizes = " x ".join(f"{len(config['grid'][axis])} {axis}" for axis in AXES if len(config["grid"][axis]) > 1)
        raise ConfigError(
            f"config key 'grid': {cells:,} cells ({sizes}) is more than max_cells = {config['max_cells']:,}; planning costs "
            "~28 ms and ~0.5 MB per cell before any job runs: raise config key 'max_cells' to plan it anyway"
        )


def check_path_length(results: str, cells: list[str]) -> None:
    """The deepest file lltax writes fits the file system's PATH_MAX."""
    deepest = max((len(cell) for cell in cells), default=0) + len(LONGEST_FILE) + len("/logs/curve_eval/.log")
    if len(str(Path(results).resolve()).encode()) + deepest >= PATH_MAX:
        raise ConfigError(
            f"config keys 'results_dir' and 'experiment': {results!r} leaves no room for the cell folders under it "
            f"(the deepest path would pass {PATH_MAX} bytes); choose a shorter folder"
        )


def check_builders(config: dict) -> None:
    """Own models and datasets given by import path import as a job would import them: in a
    fresh interpreter of this environment, without the working directory on the path (jobs run
    the ``lltax`` script, whose path does not hold it). Imported, not called."""
    import subprocess
    import sys

    for key, section in (("model.name", "model"), ("dataset.name", "dataset")):
        name = config[section]["name"]
        if ":" not in name:
            continue
        module, _, function = name.partition(":")
        code = (
            f"import importlib, sys\nmodule = importlib.import_module({module!r})\n"
            f"sys.exit(0 if callable(getattr(module, {function!r}, None)) else 3)"
        )
        result = subprocess.run([sys.executable, "-P", "-c", code], capture_output=True, text=True, timeout=600)
        if result.returncode == 3:
            raise ConfigError(f"config key {key!r}: {module} has no callable {function!r}")
        if result.returncode:
            last = (result.stderr.strip().splitlines() or ["no error message"])[-1]
            raise ConfigError(f"config key {key!r}: the jobs cannot import {module!r} ({last}); install it or put it on PYTHONPATH")

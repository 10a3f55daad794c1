"""lltax's own checks of a config, beyond what its JSON schema can say: seeds, finiteness,
relations between keys of one section, plot keys, batch and model sizes against the data."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from lltax.contract import AXES, DATASET_SIZES, VARIABLE_ATTRS, ConfigError

# Refuse models above this many parameters before training: 1e9 float32 parameters are 4 GB of
# weights and ~16 GB with gradients and momentum, beyond any single job this tool schedules.
MAX_PARAMETERS = 1_000_000_000


def parameter_estimate(model: str, width: int, input_shape: tuple[int, ...], num_classes: int = 10) -> int:
    """Parameters of a registered model at ``width`` (exact for resnet1d and mlp, within 3% for resnet18 and vgg11 at widths >= 4)."""
    k = width
    if model == "resnet1d":
        return 106 * k * k + 85 * k + 10
    if model == "mlp":
        inputs = int(np.prod(input_shape))
        return inputs * k + k + k * k + k + k * num_classes + num_classes
    # resnet18 / vgg11 grow as k^2: 11,173,962 and 9,228,362 parameters at k = 64.
    return int({"resnet18": 11_173_962, "vgg11": 9_228_362}[model] * (k / 64) ** 2)


def check_seeds(seeds: Any) -> None:
    """``seeds`` is a count >= 1 or a list of distinct integers >= 0; say which rule is broken."""
    allowed = "a number of seeds >= 1 (seeds 0..n-1) or a list of distinct integers >= 0"
    if isinstance(seeds, bool):
        raise ConfigError(f"config key 'seeds': {seeds!r} is not allowed; give {allowed}")
    if isinstance(seeds, int) and seeds < 1:
        raise ConfigError(f"config key 'seeds': {seeds} seeds is not allowed; give {allowed}")
    if isinstance(seeds, list):
        if not seeds:
            raise ConfigError(f"config key 'seeds': the list is empty; give {allowed}")
        bad = [s for s in seeds if isinstance(s, bool) or not isinstance(s, int) or s < 0]
        if bad:
            raise ConfigError(f"config key 'seeds': {bad} are not integers >= 0; give {allowed}")
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


def _check_hessian(hessian: dict, where: str) -> None:
    if hessian["top_k"] > hessian["max_iterations"]:
        raise ConfigError(
            f"{where} 'hessian.top_k': {hessian['top_k']} eigenvalues need at least as many iterations; "
            f"hessian.max_iterations is {hessian['max_iterations']}"
        )


def _check_landscape(landscape: dict, where: str) -> None:
    low, high = landscape["range_1d"]
    if not low < high:
        raise ConfigError(f"{where} 'landscape.range_1d': {[low, high]} must be [low, high] with low < high")


# Checks of one section that the schema cannot express (relations between its keys): run on the
# config before any job, and on a job's --settings, so a hand-run command is held to the same rules.
SECTION_CHECKS = {"hessian": _check_hessian, "landscape": _check_landscape}


def check_section(section: str, values: dict, where: str = "--settings key") -> None:
    """lltax's own checks of a filled-in config section (ConfigError naming the key)."""
    if section in SECTION_CHECKS:
        SECTION_CHECKS[section](values, where)


def check_sizes(config: dict) -> None:
    """Batch sizes against the data each cell trains on, and model sizes against memory."""
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
    model, width = config["model"]["name"], max(config["grid"]["width"])
    if ":" in model:
        return  # your own builder: its size is known only once built (in the train job)
    parameters = parameter_estimate(model, width, input_shape)
    if parameters > MAX_PARAMETERS:
        raise ConfigError(
            f"config key 'grid.width': {model} at width {width} has about {parameters:.2g} parameters "
            f"({4 * parameters / 1e9:.0f} GB of float32 weights before gradients and momentum); the limit is {MAX_PARAMETERS:.0e}"
        )

"""The run-time limit of a landscape or basin job, checked when the workflow plans a run
(``rules/common.smk``): its estimated run time (``lltax.runtime.cost``, on the config's device; the
CPU's for device auto) within ``MAX_JOB_SECONDS``. Kept out of ``lltax.config.schema``'s validation,
which every job imports: the cost model decides what is planned, never a result.
"""

from __future__ import annotations

from lltax.config.grid import expand_grid
from lltax.contract import DATASET_SIZES, ConfigError
from lltax.runtime.cost import estimate_seconds
from lltax.runtime.job_limits import JOB_SIZES, MAX_JOB_SECONDS


def check_job_time(config: dict) -> None:
    """Refuse a validated config whose slowest landscape or basin job would run beyond
    ``MAX_JOB_SECONDS``, naming the key whose reduction saves the most time and the estimate.
    Only for the built-in models and datasets, whose costs lltax knows."""
    if ":" in config["model"]["name"] or config["dataset"]["name"] not in DATASET_SIZES:
        return
    cost_config = {**config, "device": "cuda" if config["device"] == "cuda" else "cpu"}  # auto: the machine may have none
    for rule, keys in JOB_SIZES.items():
        section = config[rule]
        if not section["enabled"]:
            continue
        slowest = max(expand_grid(config["grid"]), key=lambda cell: (cell["width"], cell["train_fraction"]))
        seconds = estimate_seconds(rule, slowest, cost_config)
        if seconds > MAX_JOB_SECONDS:
            smaller = {k: estimate_seconds(rule, slowest, {**cost_config, rule: {**section, k: 1 if section[k] else 0}}) for k in keys}
            key = min(keys, key=smaller.get)  # the key whose reduction saves the most time
            raise ConfigError(
                f"config key '{rule}.{key}': {section[key]} makes a {rule} job take about {seconds / 86400:.3g} days on "
                f"{cost_config['device']} (lltax.runtime.cost estimate for cell width {slowest['width']}), beyond the "
                f"{MAX_JOB_SECONDS / 86400:g} days one job may run; lower it"
                + (" (or set device: cuda for the GPU's estimate)" if cost_config["device"] == "cpu" else "")
            )

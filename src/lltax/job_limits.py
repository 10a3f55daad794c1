"""Sizes a landscape or basin job cannot survive, refused when the config is read: result arrays
beyond ``memory_budget_gb``, an estimated run time (``lltax.cost``) beyond ``MAX_JOB_SECONDS``.
"""

from __future__ import annotations

from lltax.contract import ConfigError

# What one job can compute and hold: its estimated run time on the config's device (lltax.cost,
# the CPU's for device auto) and its result arrays (the surfaces, float64) in memory_budget_gb.
MAX_JOB_SECONDS = 7 * 24 * 3600
RESULT_ARRAYS = 8  # float64 values stored per landscape or convexity point (losses, accuracies, ratios)


# The sizes of a job a config sets, by rule: what check_job_limits bounds and names.
JOB_SIZES = {
    "landscape": ("points_1d", "points_2d", "ratio_points", "spectrum_steps", "num_samples", "test_samples"),
    "basin": ("directions", "coarse", "refine", "num_samples", "convexity_points"),
}


def _result_bytes(rule: str, section: dict) -> int:
    """Bytes of a job's result arrays: its surfaces (float64, ``RESULT_ARRAYS`` values a point)."""
    if rule == "landscape":
        points = 2 * section["points_1d"] + section["points_2d"] ** 2 + section["ratio_points"] ** 2
    else:
        points = 2 * section["directions"] + section["convexity_points"] ** 2
    return RESULT_ARRAYS * 8 * points


def check_job_limits(config: dict, time: bool = True) -> None:
    """Every size of a landscape or basin job against what a job can hold and compute: its
    result arrays within memory_budget_gb, its estimated run time (lltax.cost, on the config's
    device; the CPU's for device auto) within ``MAX_JOB_SECONDS``. Refused naming the key that
    costs the most and the estimate."""
    from lltax.cost import estimate_seconds  # cost needs no config checks: imported where used, as grid
    from lltax.grid import expand_grid

    cost_config = {**config, "device": "cuda" if config["device"] == "cuda" else "cpu"}  # auto: the machine may have none
    budget = config["memory_budget_gb"] * 1e9
    for rule, keys in JOB_SIZES.items():
        section = config[rule]
        if not section["enabled"]:
            continue
        held = _result_bytes(rule, section)
        if held > budget:
            key = max(keys, key=lambda k: held - _result_bytes(rule, {**section, k: 0}))
            raise ConfigError(
                f"config key '{rule}.{key}': {section[key]} makes each {rule} job hold about {held / 1e9:.3g} GB of results "
                f"({RESULT_ARRAYS} float64 values per point), beyond memory_budget_gb {config['memory_budget_gb']:g}; lower it"
            )
        if not time:
            continue
        slowest = max(expand_grid(config["grid"]), key=lambda cell: (cell["width"], cell["train_fraction"]))
        seconds = estimate_seconds(rule, slowest, cost_config)
        if seconds > MAX_JOB_SECONDS:
            smaller = {k: estimate_seconds(rule, slowest, {**cost_config, rule: {**section, k: 1 if section[k] else 0}}) for k in keys}
            key = min(keys, key=smaller.get)  # the key whose reduction saves the most time
            raise ConfigError(
                f"config key '{rule}.{key}': {section[key]} makes a {rule} job take about {seconds / 86400:.3g} days on "
                f"{cost_config['device']} (lltax.cost estimate for cell width {slowest['width']}), beyond the "
                f"{MAX_JOB_SECONDS / 86400:g} days one job may run; lower it"
                + (" (or set device: cuda for the GPU's estimate)" if cost_config["device"] == "cpu" else "")
            )
